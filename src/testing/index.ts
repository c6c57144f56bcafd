/**
 * kmslab/testing: a kit for property tests of threshold logic (docs/testing.md). fast-check
 * arbitraries (`arbitraries`), the reference count model (`countModel`), a socket-free host
 * (`createMemoryHost`) and `playFleet`, which times a fleet's requests the way KMS clients do.
 * fast-check is a peer dependency: the arbitraries are the user's own fast-check's.
 */
import * as arbitraries from './arbitraries.js';

export {
  type ClockStep,
  cmidNumber,
  cmidOf,
  DAY_MS,
  type Fleet,
  type FleetMachine,
  HOUR_MS,
  type HostStep,
  type KmsRequest,
  type Machine,
  type MutatedKmsRequest,
  type Mutation,
  type MutationExpectation,
  machineOf,
  type RequestStep,
  type Schedule,
} from './arbitraries.js';
export {
  FLEET_START,
  type FleetAnswer,
  type FleetOutcome,
  type FleetTarget,
  hostTarget,
  type MachineOutcome,
  type PlayedRequest,
  type PlayedSteps,
  type PlayOptions,
  playFleet,
  playSteps,
} from './fleet.js';
export {
  createMemoryHost,
  MEMORY_HOST_START,
  type MemoryActivation,
  MemoryExchangeError,
  type MemoryHost,
  type MemoryHostOptions,
  type MemoryRequest,
} from './memory-host.js';
export {
  CAPACITY_BOUNDS,
  type CountModel,
  capacityOf,
  countModel,
  MAX_REQUIRED_COUNT,
  type ModelEntry,
  type ModelPool,
  POOL_NAMES,
  type PoolName,
  poolNameOf,
  RETENTION_MS,
  type SeenRequest,
} from './model.js';
export { PRODUCT_CLASSES, type ProductClass, type ProductInfo, productInfo } from './products.js';
export { arbitraries };
