import { randomBytes } from 'node:crypto';

/** A function of a deployed package, as the Functions host indexes it (`app.http(name, …)` etc.). */
export interface IndexedFunction {
  name: string;
  /** `http`, `eventGrid`, `timer`, … (the `app.*` method that registered it; `get`/`post`/… are `http`). */
  trigger: string;
  /** HTTP functions: their route (default: the name), methods and auth level. */
  route?: string;
  methods?: string[];
  authLevel?: string;
  /** Timer functions: the NCRONTAB schedule. */
  schedule?: string;
}

/** The last successful One Deploy of a site. */
export interface DeployedPackage {
  /** Every file of the zip by its path (directories left out). */
  files: Map<string, Uint8Array>;
  /** The functions the package registers. */
  functions: IndexedFunction[];
  /** Where the package was extracted and runs from. */
  dir: string;
  /** package.json `main`. */
  main: string;
  /** host.json `extensions.http.routePrefix` (default `api`). */
  routePrefix: string;
  deploymentId: string;
}

/** What App Service keeps for a site besides its ARM resource. */
export interface SiteState {
  /** Site name in the casing of its first PUT. */
  name: string;
  appSettings: Record<string, string>;
  /**
   * The whole site configuration, as `config/web` answers it; a GET of the site itself reports
   * most of it as null, as App Service does.
   */
  siteConfig: Record<string, unknown>;
  masterKey: string;
  functionKey: string;
  eventGridKey: string;
  /**
   * Whether basic (user name and password) publishing is allowed on the SCM and FTP endpoints:
   * `basicPublishingCredentialsPolicies/{scm,ftp}`. ARM creates a site with both allowed.
   */
  basicPublishing: { scm: boolean; ftp: boolean };
  /** Publishes accepted (202), failed deployments included. */
  publishes: number;
  deployed: DeployedPackage | undefined;
}

/** Functions-style key: 56 URL-safe characters ending in `==`, as the host generates them. */
function hostKey(): string {
  return `${randomBytes(40).toString('base64url').slice(0, 54)}==`;
}

/** Site state by site name (site names are global, like their host names). */
export class SiteRegistry {
  private readonly sites = new Map<string, SiteState>();

  get(name: string): SiteState | undefined {
    return this.sites.get(name.toLowerCase());
  }

  /** The site's state, created (with its keys) on first use. */
  ensure(name: string): SiteState {
    const key = name.toLowerCase();
    let site = this.sites.get(key);
    if (!site) {
      site = {
        name,
        appSettings: {},
        siteConfig: {},
        masterKey: hostKey(),
        functionKey: hostKey(),
        eventGridKey: hostKey(),
        basicPublishing: { scm: true, ftp: true },
        publishes: 0,
        deployed: undefined,
      };
      this.sites.set(key, site);
    }
    return site;
  }

  all(): SiteState[] {
    return [...this.sites.values()];
  }
}
