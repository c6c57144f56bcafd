/**
 * Defaults that the command line shows in its help as well as the modules that use them. They live
 * here, in a module that imports nothing, so that `kmslab --help` and `kmslab serve` can name them
 * without loading the SQLite store, the DNS codec or the fleet simulator behind them.
 */

/** Default database file, relative to the working directory; its directory is created if missing. */
export const DEFAULT_STORE_PATH = 'data/kmslab.sqlite';

/** TTL of the lab DNS responder's and `kmslab dns-record`'s records, in seconds. */
export const DEFAULT_DNS_TTL = 600;

/** Realistic defaults: N_Policy 25 (Windows client), 5 (Windows Server), 5 (Office), all KMS V6. */
export const DEFAULT_FLEET_PRODUCTS = {
  windows: 'Windows 10/11 Enterprise',
  server: 'Windows Server 2022 Datacenter',
  office: 'Office LTSC Professional Plus 2024',
} as const;
