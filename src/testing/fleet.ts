/**
 * Plays a fleet's schedules the way KMS clients time their requests: first contact, a retry every
 * VLActivationInterval (2 h) while the count is insufficient, a renewal every VLRenewalInterval
 * (7 days) once activated, nothing after the machine leaves. Whoever answers is a function, so the same
 * schedule drives the memory host, the count model or a user's own tool.
 */
import { DAY_MS, type Fleet, type FleetMachine, HOUR_MS, type HostStep } from './arbitraries.js';
import type { MemoryActivation, MemoryHost } from './memory-host.js';
import type { SeenRequest } from './model.js';

/** What the answering side tells a machine. */
export interface FleetAnswer {
  activated: boolean;
  count?: number | null;
}

/** Answers one machine's request at host time `at` (ms). Requests come in time order. */
export type FleetTarget = (machine: FleetMachine, at: number) => FleetAnswer;

export interface PlayOptions {
  /** Host time of day 0 (default 2026-01-01T00:00:00Z). */
  start?: number;
  /** Default 2 h (the host's default VLActivationInterval). */
  retryEveryMs?: number;
  /** Default 7 days (the host's default VLRenewalInterval). */
  renewEveryMs?: number;
}

export interface MachineOutcome {
  id: number;
  cmid: string;
  /** Host time of its first activated answer, or null. */
  activatedAt: number | null;
  /** Whole days after the start of that answer (0 = the first day), or null. */
  activationDay: number | null;
  requests: number;
}

export interface PlayedRequest {
  machine: number;
  at: number;
  activated: boolean;
  count: number | null;
}

export interface FleetOutcome {
  machines: MachineOutcome[];
  /** Every request, in the order sent. */
  log: PlayedRequest[];
  /** Host time the fleet ended: start + days. */
  end: number;
}

export const FLEET_START = Date.UTC(2026, 0, 1);

export function playFleet(fleet: Fleet, target: FleetTarget, opts: PlayOptions = {}): FleetOutcome {
  const start = opts.start ?? FLEET_START;
  const retry = opts.retryEveryMs ?? 2 * HOUR_MS;
  const renew = opts.renewEveryMs ?? 7 * DAY_MS;
  const end = start + fleet.days * DAY_MS;
  const machines: MachineOutcome[] = fleet.machines.map((m) => ({
    id: m.id,
    cmid: m.cmid,
    activatedAt: null,
    activationDay: null,
    requests: 0,
  }));
  const next = fleet.machines.map((m) => start + m.firstContact);
  const log: PlayedRequest[] = [];
  for (;;) {
    // The earliest next request; ties go to the lower machine number.
    let i = -1;
    for (let k = 0; k < next.length; k++) if (i < 0 || next[k]! < next[i]!) i = k;
    if (i < 0) break;
    const at = next[i]!;
    const m = fleet.machines[i]!;
    if (at >= end || (m.leaves !== null && at >= start + m.leaves)) {
      next[i] = Number.POSITIVE_INFINITY;
      if (next.every((t) => t === Number.POSITIVE_INFINITY)) break;
      continue;
    }
    const answer = target(m, at);
    const o = machines[i]!;
    o.requests++;
    log.push({ machine: m.id, at, activated: answer.activated, count: answer.count ?? null });
    if (answer.activated && o.activatedAt === null) {
      o.activatedAt = at;
      o.activationDay = Math.floor((at - start) / DAY_MS);
    }
    next[i] = at + (answer.activated ? renew : retry);
  }
  return { machines, log, end };
}

/** The memory host as a fleet's target: its clock is set to each request's time. */
export function hostTarget(host: MemoryHost): FleetTarget {
  return (m, at) => {
    host.setTime(at);
    const r = host.request({ cmid: m.cmid, sku: m.skuId, workstation: m.workstation });
    return { activated: r.activated, count: r.count };
  };
}

export interface PlayedSteps {
  /** Every request as the host saw it (the count model's input). */
  requests: SeenRequest[];
  /** The host's verified answer to each request, in the same order. */
  answers: MemoryActivation[];
}

/**
 * Plays a host script (`arbitraries.hostSteps`) on a memory host: clock steps move its clock (a jump
 * sets it), requests go through `host.request` with the machine's product and clock skew. `onStep`
 * sees the host after each step.
 */
export function playSteps(
  host: MemoryHost,
  steps: readonly HostStep[],
  onStep?: (step: HostStep, index: number, answer: MemoryActivation | null) => void,
): PlayedSteps {
  const requests: SeenRequest[] = [];
  const answers: MemoryActivation[] = [];
  steps.forEach((s, i) => {
    let answer: MemoryActivation | null = null;
    if (s.kind === 'advance') host.advance(s.ms);
    else if (s.kind === 'jump') host.setTime(host.now() + s.ms);
    else {
      const m = s.machine;
      const time = host.now();
      answer = host.request({
        cmid: m.cmid,
        sku: m.skuId,
        workstation: m.workstation,
        clientTime: time + s.skewMs,
      });
      requests.push({
        cmid: m.cmid,
        applicationId: m.applicationId,
        kmsId: m.kmsId,
        requiredCount: m.requiredCount,
        time,
      });
      answers.push(answer);
    }
    onStep?.(s, i, answer);
  });
  return { requests, answers };
}
