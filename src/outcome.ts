// What became of one message at one output, as a value: delivered (durable), rejected (the
// data's fault: it goes to the dead-letter topic instead, with the refusal as its reason) or
// fatal (the output can never again be trusted: the worker stops, acking nothing more). Sinks
// report outcomes; the pipeline (pipeline/delivery.ts) combines them, in one place.

/** Where on its way a message was refused. */
export type Stage = 'decode' | 'route' | 'map' | 'write';

/**
 * Why a message (or one of its outputs) cannot be written: it becomes a dead letter. `reason`
 * is one of a small closed set per component (a metric label: never a topic or a device id).
 */
export interface Refusal {
  readonly reason: string;
  readonly stage: Stage;
  readonly route?: string | undefined;
  /** The sink that refused it (the dead letter's `sluice-sink` header). */
  readonly sink?: string | undefined;
  readonly error: string;
}

/** Facts a delivered output hands to the outputs that follow it (the audit record's sequence number). */
export type Annotations = Readonly<Record<string, string>>;

export type Outcome =
  | { readonly kind: 'delivered'; readonly annotations?: Annotations | undefined }
  | { readonly kind: 'rejected'; readonly refusal: Refusal }
  | { readonly kind: 'fatal'; readonly error: Error };

export const delivered: Outcome = Object.freeze({ kind: 'delivered' });

/** Told the outcome of one item, exactly once. */
export interface OutcomeListener {
  decided(outcome: Outcome): void;
  /** When the item's message was read, on the monotonic clock: a sink's latency is timed from it. */
  readonly receivedMs?: number;
}
