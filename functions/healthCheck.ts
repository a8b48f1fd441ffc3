import { app } from '@azure/functions';
import type { InvocationContext, Timer, TimerFunctionOptions } from '@azure/functions';
import { healthCheckSchedule } from '../shared/config';
import { runHealthCheckJob } from '../shared/health/healthCheckJob';
import { getRuntime } from '../shared/runtime';

/**
 * The scheduled health check (HEALTH_CHECK_SCHEDULE, NCRONTAB): permissions, firewall, soft delete
 * and expiry of every vault, with cause and remedy; stores the report and notifies on a change of
 * state. Late or overlapping runs are safe: a run lease lets one run at a time.
 */
export const healthCheck = {
  name: 'healthCheck',
  options: {
    // Read at registration, like the host reads the binding; loadConfig validates the same setting.
    schedule: healthCheckSchedule(),
    runOnStartup: false,
    handler: async (timer: Timer, context: InvocationContext): Promise<void> => {
      try {
        await runHealthCheckJob(getRuntime().health(), (line) => context.log(line), { isPastDue: timer?.isPastDue === true });
      } catch (err: unknown) {
        context.error(err);
        throw err;
      }
    },
  } satisfies TimerFunctionOptions,
};

app.timer(healthCheck.name, healthCheck.options);
