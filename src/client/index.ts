/**
 * `kmslab/client`: the client emulator. One machine's activation (`activate`, `KmsClient`), DNS SRV
 * discovery of KMS hosts with failover, and fleets of simulated machines on the real client schedule.
 */

export {
  type ActivateOptions,
  type ActivationResult,
  activate,
  type BindInfo,
  type FailureInfo,
  type FailureKind,
  KmsClient,
  KmsClientError,
  type KmsClientOptions,
} from './client.js';
export {
  activateWithDiscovery,
  type DiscoveryActivateOptions,
  type DiscoveryAttempt,
  type DiscoveryOutcome,
  discoverKmsHosts,
  orderSrvRecords,
  querySrv,
  type SrvRecord,
} from './discover.js';
export {
  type FleetOptions,
  type FleetPlan,
  type FleetResult,
  planFleet,
  type RunFleetOptions,
  runFleet,
  simulateFleet,
  type TimelineRow,
} from './fleet.js';
export { InProcessFleetHost, RemoteFleetHost } from './fleet-host.js';
export { fleetCsv, fleetJson, fleetSvg, writeFleetOutputs } from './fleet-output.js';
