/**
 * `kmslab`: the lab harness, what a test of activation tooling needs. An in-process host on an
 * ephemeral port with a manual clock, its event stream, fault rules, scenarios, transcripts and
 * replay, the host runtime and the lab DNS responder, and the client call a test drives it with.
 * The client emulator in full is `kmslab/client`, the codecs `kmslab/protocol`, the vitest integration
 * `kmslab/vitest`; docs/api.md lists every entry point. Anything not exported here is internal.
 */

export { buildCatalog, type Catalog, defaultCatalog } from './catalog/products.js';
// Driving a host from a test: one client call and what it returns.
export { type ActivateOptions, type ActivationResult, activate } from './client/client.js';
// Its event stream.
export {
  type ConnectionEvent,
  type LabEvent,
  type LabEventMap,
  LabEvents,
  type ResetEvent,
} from './harness/events.js';
// Fault rules (plain data: the same in code, scenario files and POST /faults).
export {
  type FaultAction,
  type FaultActionType,
  type FaultFired,
  type FaultLevel,
  type FaultMatch,
  type FaultRule,
  FaultRuleError,
  hostDown,
  parseFaultRules,
  validateFaultRules,
} from './harness/faults.js';
// An in-process lab host.
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
  startLabHost,
  type TimeInput,
} from './harness/lab-host.js';
// Transcripts: replaying the client side against any host, serving the recorded host side.
export {
  type ReplayDifference,
  type ReplayOptions,
  type ReplayReport,
  replayTranscript,
  type ServedTranscript,
  type ServeTranscriptOptions,
  serveTranscript,
} from './harness/replay.js';
// Scenario files.
export {
  type ExpectationResult,
  formatScenarioReport,
  loadScenario,
  parseScenario,
  type RunScenarioOptions,
  runScenario,
  type Scenario,
  ScenarioError,
  type ScenarioReport,
  type ScenarioStep,
} from './harness/scenario.js';
export { parseTranscript, TranscriptError, type TranscriptRecord } from './harness/transcript.js';
// Time, randomness, products and policy.
export { type Clock, type DurationInput, ManualClock, parseDuration, SystemClock } from './host/clock.js';
export type { ActivationEvent } from './host/events.js';
export type { HostPolicy } from './host/policy.js';
export { type Random, SeededRandom } from './host/random.js';
export { HResult, hresultHex, hresultText } from './kms/hresult.js';
export {
  type DnsResponder,
  type DnsResponderOptions,
  type DnsTarget,
  startDnsResponder,
} from './server/dns.js';
// The host without the harness, and the lab DNS responder.
export { type HostRuntime, type HostRuntimeOptions, startHostRuntime } from './server/runtime.js';
export type { HistoryQuery, HistoryRecord } from './store/store.js';
