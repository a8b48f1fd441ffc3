/**
 * The function app's entry point (package.json "main"): importing each function file registers it
 * with the Functions host. The same list feeds the local host (local/host.ts), so both serve
 * exactly these definitions.
 */
import type { EventGridFunctionOptions, HttpFunctionOptions, TimerFunctionOptions } from '@azure/functions';
import { loadConfig } from '../shared/config';
import { health } from './health';
import { healthCheck } from './healthCheck';
import { listSecrets } from './listSecrets';
import { openApi } from './openApi';
import { resolveSecret } from './resolveSecret';
import { resolveSecrets } from './resolveSecrets';
import { rotateSecret } from './rotateSecret';
import { secretAdoption } from './secretAdoption';
import { secretEvents } from './secretEvents';
import { secretMetadata } from './secretMetadata';

/** One function of the app, as both hosts see it. */
export type FunctionDefinition =
  | { readonly kind: 'http'; readonly name: string; readonly options: HttpFunctionOptions }
  | { readonly kind: 'eventGrid'; readonly name: string; readonly options: EventGridFunctionOptions<unknown> }
  | { readonly kind: 'timer'; readonly name: string; readonly options: TimerFunctionOptions };

/** Every function of the app. Static routes come before parameterised ones with the same method. */
export const functionDefinitions: readonly FunctionDefinition[] = [
  { kind: 'http', ...openApi },
  { kind: 'http', ...health },
  { kind: 'http', ...listSecrets },
  { kind: 'http', ...resolveSecrets },
  { kind: 'http', ...secretMetadata },
  { kind: 'http', ...secretAdoption },
  { kind: 'http', ...rotateSecret },
  { kind: 'http', ...resolveSecret },
  { kind: 'eventGrid', ...secretEvents },
  { kind: 'timer', ...healthCheck },
];

// A bad setting stops start-up with one line naming it, rather than failing every request.
loadConfig();
