/**
 * Turns what the controller enqueues into journal entries: the jobs of one enqueue are grouped by
 * trigger (kind, id, time), so one BBS event, one ASG listing or one policy change becomes one
 * entry with every cell it touched and every job it caused. The subject is resolved from the
 * leader's in-memory world: the app and space of an instance, desired LRP or task (remembered for a
 * while, so removals still name them), the groups and spaces an ASG change touched, the apps of
 * added or removed policies.
 */
import type { EnqueuedJob } from '../controller/extensions.js';
import type { WrittenState } from '../controller/reconcile/queue.js';
import { type AsgIndex, PolicyIndex, policyKey } from '../rules/indexes.js';
import { diffAsgs } from '../rules/span.js';
import type { Trigger, World } from '../rules/world.js';
import type { JournalEntryInput, JournalSubject, JournalType } from './journal.js';
import { sourceOf } from './journal.js';

interface Ident {
  app: string;
  space: string;
}

const MAX_REMEMBERED = 50_000;

export class JournalRecorder {
  private readonly idents = new Map<string, Ident>();
  private lastAsg: AsgIndex | null = null;
  private lastPol: PolicyIndex | null = null;
  private readonly lastStatus = new Map<string, string>();

  /**
   * Entries for one enqueue. `world` is the leader's world (null on a standby), used for the
   * idents of instances and tasks; `written` the security groups and policies this enqueue's
   * write carried: changes are diffed against those, never against the live world, which may
   * already hold the next change (whose own enqueue records it).
   */
  entriesFor(
    jobs: readonly EnqueuedJob[],
    world: World | null,
    written: WrittenState = {},
  ): JournalEntryInput[] {
    const groups = new Map<string, { trigger: Trigger; cells: string[]; jobIds: string[] }>();
    for (const j of jobs) {
      for (const t of j.triggers) {
        const k = `${t.kind}\u0000${t.id}\u0000${t.at}`;
        let g = groups.get(k);
        if (!g) {
          g = { trigger: t, cells: [], jobIds: [] };
          groups.set(k, g);
        }
        g.cells.push(j.cellId);
        if (j.jobId && !g.jobIds.includes(j.jobId)) g.jobIds.push(j.jobId);
      }
    }
    const out: JournalEntryInput[] = [];
    const asgNow = written.asg ?? null;
    const polNow = written.policies ?? null;
    for (const { trigger, cells, jobIds } of groups.values()) {
      const type = trigger.kind as JournalType;
      const { subject, detail } = this.subjectOf(trigger, world, asgNow, polNow);
      out.push({
        type,
        source: sourceOf(type),
        subject,
        cells: [...new Set(cells)].sort(),
        jobIds,
        at: trigger.at,
        ...(detail ? { detail } : {}),
      });
    }
    // A security-group or policy change that touched no cell (no container of a bound space, no
    // running destination app) enqueues nothing, yet it is a change the controller saw: record it
    // with an empty cell list. Only against a known previous state (not on a leader's first write).
    const now = Date.now();
    if (asgNow && this.lastAsg && asgNow.hash !== this.lastAsg.hash && !out.some((e) => e.type === 'asg')) {
      const t: Trigger = { kind: 'asg', id: 'listing', at: now };
      out.push({
        type: 'asg',
        source: 'capi',
        ...this.subjectOf(t, world, asgNow, polNow),
        cells: [],
        jobIds: [],
        at: now,
      });
    }
    if (
      polNow &&
      this.lastPol &&
      polNow.hash !== this.lastPol.hash &&
      !out.some((e) => e.type === 'policy')
    ) {
      const t: Trigger = { kind: 'policy', id: 'poll', at: now };
      out.push({
        type: 'policy',
        source: 'policy-server',
        ...this.subjectOf(t, world, asgNow, polNow),
        cells: [],
        jobIds: [],
        at: now,
      });
    }
    if (asgNow) this.lastAsg = asgNow;
    if (polNow) this.lastPol = polNow;
    return out;
  }

  /** An entry for an agent status report, when its applied version or error changed. */
  statusEntry(
    cellId: string,
    status: { appliedVersion: number; error: string },
    at = Date.now(),
  ): JournalEntryInput | null {
    const sig = `${status.appliedVersion}\u0000${status.error}`;
    if (this.lastStatus.get(cellId) === sig) return null;
    this.lastStatus.set(cellId, sig);
    if (this.lastStatus.size > MAX_REMEMBERED)
      this.lastStatus.delete(this.lastStatus.keys().next().value as string);
    return {
      type: 'agent-report',
      source: 'agent',
      subject: { guid: cellId },
      cells: [cellId],
      jobIds: [],
      at,
      detail: { appliedVersion: status.appliedVersion, ...(status.error ? { error: status.error } : {}) },
    };
  }

  private remember(key: string, ident: Ident | null): Ident | null {
    if (ident && (ident.app || ident.space)) {
      this.idents.delete(key);
      this.idents.set(key, ident);
      if (this.idents.size > MAX_REMEMBERED) this.idents.delete(this.idents.keys().next().value as string);
      return ident;
    }
    return this.idents.get(key) ?? null;
  }

  private subjectOf(
    t: Trigger,
    world: World | null,
    asgNow: AsgIndex | null,
    polNow: PolicyIndex | null,
  ): { subject: JournalSubject; detail?: Record<string, unknown> } {
    const ident = (i: Ident | null): JournalSubject => ({
      guid: t.id,
      ...(i?.app ? { apps: [i.app] } : {}),
      ...(i?.space ? { spaces: [i.space] } : {}),
    });
    switch (t.kind) {
      case 'lrp': {
        const inst = world?.instance(t.id);
        const d = inst ? world?.desiredInfo(inst.processGuid) : undefined;
        return {
          subject: ident(this.remember(`h:${t.id}`, d ? { app: d.appGuid, space: d.spaceGuid } : null)),
        };
      }
      case 'desired': {
        const d = world?.desiredInfo(t.id);
        return {
          subject: ident(this.remember(`p:${t.id}`, d ? { app: d.appGuid, space: d.spaceGuid } : null)),
        };
      }
      case 'task': {
        const task = world?.task(t.id);
        return {
          subject: ident(
            this.remember(`t:${t.id}`, task ? { app: task.appGuid, space: task.spaceGuid } : null),
          ),
        };
      }
      case 'asg': {
        if (!asgNow) return { subject: { guid: t.id } };
        const diff = diffAsgs(this.lastAsg, asgNow);
        return {
          subject: {
            guid: t.id,
            ...(diff.changedGroups.length > 0 ? { groups: diff.changedGroups } : {}),
            ...(diff.spaces.size > 0 ? { spaces: [...diff.spaces].sort() } : {}),
          },
          detail: { changedGroups: diff.changedGroups.length, global: diff.all },
        };
      }
      case 'policy': {
        if (!polNow) return { subject: { guid: t.id } };
        const before = this.lastPol ?? PolicyIndex.EMPTY;
        const apps = new Set<string>();
        let added = 0;
        let removed = 0;
        for (const p of polNow.policies) {
          if (!before.has(policyKey(p))) {
            added++;
            apps.add(p.source.appGuid).add(p.destination.appGuid);
          }
        }
        for (const p of before.policies) {
          if (!polNow.has(policyKey(p))) {
            removed++;
            apps.add(p.source.appGuid).add(p.destination.appGuid);
          }
        }
        return {
          subject: { guid: t.id, ...(apps.size > 0 ? { apps: [...apps].sort() } : {}) },
          detail: { added, removed },
        };
      }
      default:
        return { subject: { guid: t.id } };
    }
  }
}
