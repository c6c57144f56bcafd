/**
 * kmslab's public API. The lab harness first (what tests use), then the client emulator, then a
 * curated set of codecs and building blocks. Everything else is internal and may change.
 */

export { buildCatalog, type Catalog, defaultCatalog } from './catalog/products.js';
// Client emulator.
export {
  type ActivateOptions,
  type ActivationResult,
  activate,
  type FailureInfo,
  KmsClient,
  KmsClientError,
  type KmsClientOptions,
} from './client/client.js';
// DNS discovery of KMS hosts (_vlmcs._tcp SRV records, RFC 2782 order, failover).
export {
  activateWithDiscovery,
  type DiscoveryActivateOptions,
  type DiscoveryAttempt,
  type DiscoveryOutcome,
  discoverKmsHosts,
  orderSrvRecords,
  querySrv,
  type SrvRecord,
} from './client/discover.js';
// Fleets of simulated machines.
export {
  type FleetOptions,
  type FleetPlan,
  type FleetResult,
  planFleet,
  runFleet,
  simulateFleet,
  type TimelineRow,
} from './client/fleet.js';
export { InProcessFleetHost, RemoteFleetHost } from './client/fleet-host.js';
export { fleetCsv, fleetJson, fleetSvg, writeFleetOutputs } from './client/fleet-output.js';
export { type ControlRoute, faultRoutes, labEventsRoute } from './harness/control.js';
export {
  type ConnectionEvent,
  type LabEvent,
  type LabEventMap,
  LabEvents,
  type ResetEvent,
} from './harness/events.js';
export {
  type FaultAction,
  type FaultActionType,
  FaultEngine,
  type FaultEngineOptions,
  type FaultFired,
  type FaultLevel,
  type FaultMatch,
  type FaultRule,
  FaultRuleError,
  hostDown,
  type NthSpec,
  parseFaultRules,
  type TimeSpec,
  validateFaultRules,
} from './harness/faults.js';
// Lab harness: an in-process host, its events, fault injection, scenarios, transcripts and replay.
export {
  LAB_ADVERTISED_PORT,
  LAB_SEED,
  LAB_START,
  type LabActivateOptions,
  type LabHistoryQuery,
  type LabHost,
  type LabHostClient,
  type LabHostOptions,
  type LabHostState,
  offsetClock,
  startLabHost,
  type TimeInput,
} from './harness/lab-host.js';
export {
  type ReplayDifference,
  type ReplayOptions,
  type ReplayReport,
  replayTranscript,
  type ServedTranscript,
  type ServeTranscriptOptions,
  serveTranscript,
} from './harness/replay.js';
export {
  type ActivateExpect,
  type ActivateSpec,
  type ExpectationResult,
  formatScenarioReport,
  type HostCheck,
  loadScenario,
  parseScenario,
  type RunScenarioOptions,
  runScenario,
  type Scenario,
  ScenarioError,
  type ScenarioReport,
  type ScenarioStep,
} from './harness/scenario.js';
export {
  type KmsRequestFields,
  type KmsResponseFields,
  parseTranscript,
  TranscriptError,
  type TranscriptHeader,
  type TranscriptPdu,
  type TranscriptRecord,
  TranscriptRecorder,
} from './harness/transcript.js';
export { type Clock, type DurationInput, ManualClock, parseDuration, SystemClock } from './host/clock.js';
export type { ActivationEvent } from './host/events.js';
export type { HostPolicy } from './host/policy.js';
export { type Random, SeededRandom } from './host/random.js';
export { decodeRequest, encodeRequest, encodeResponse, verifyResponse } from './kms/envelope.js';
export { type EpidParts, formatEpid, isValidEpid, parseEpid } from './kms/epid.js';
export { HResult, hresultHex, hresultText, parseHResult } from './kms/hresult.js';
// Codecs: KMS messages, NDR stubs, RPC PDUs, HRESULTs, ePIDs, GUIDs and FILETIMEs.
export type {
  DecodedRequest,
  KmsRequestBody,
  KmsResponseBody,
  KmsVersion,
  NdrSyntax,
  RequestContext,
  VerifiedResponse,
} from './kms/messages.js';
export {
  unwrapRequestStub,
  unwrapResponseStub,
  wrapErrorStub,
  wrapRequestStub,
  wrapResponseStub,
} from './kms/stub.js';
export { NCA_STATUS, PTYPE } from './rpc/constants.js';
export { decodePdu } from './rpc/decode.js';
export { encodePdu } from './rpc/encode.js';
export { Framer } from './rpc/framer.js';
export type { Pdu } from './rpc/pdu.js';
// The host as a library (without the harness).
export { type HostRuntime, type HostRuntimeOptions, startHostRuntime } from './server/runtime.js';
export type { HistoryQuery, HistoryRecord } from './store/store.js';
export { isProtocolError, ProtocolError } from './wire/errors.js';
export { type FileTime, fileTimeFromMs, fileTimeToMs } from './wire/filetime.js';
export { type Guid, parseGuid } from './wire/guid.js';
