/**
 * What a client has of each channel, by `seq`: every `seq` up to `contiguous` and some above
 * it (after a gap). A `seq` seen before is a repeat (a resend announced again, a backlog that
 * overlaps live traffic); `contiguous` is what a `sync` asks to continue from, so a gap is
 * filled on the next sync and what came after it is not shown twice.
 */
export class SeqTracker {
  private readonly channels = new Map<string, { contiguous: number; above: Set<number> }>()

  /** Starts `channel` at `seq` (its messages up to `seq` are had), unless it is further already. */
  start(channel: string, seq: number): void {
    const state = this.state(channel)
    if (seq > state.contiguous) {
      state.contiguous = seq
      for (const s of [...state.above]) if (s <= seq) state.above.delete(s)
      this.advance(state)
    }
  }

  /** Records `seq` of `channel`: false when it was had already. */
  accept(channel: string, seq: number): boolean {
    const state = this.state(channel)
    if (seq <= state.contiguous || state.above.has(seq)) return false
    state.above.add(seq)
    this.advance(state)
    return true
  }

  /** Whether anything of `channel` is known. */
  knows(channel: string): boolean {
    return this.channels.has(channel)
  }

  /** Whether `channel` has a hole below its highest `seq`. */
  hasGap(channel: string): boolean {
    return (this.channels.get(channel)?.above.size ?? 0) > 0
  }

  /** The last `seq` of `channel` with nothing missing up to it (0: none). */
  contiguous(channel: string): number {
    return this.channels.get(channel)?.contiguous ?? 0
  }

  /** `{channel: contiguous}` for every channel known: the payload of a `sync`. */
  syncPayload(): Record<string, number> {
    return Object.fromEntries([...this.channels].map(([channel, state]) => [channel, state.contiguous]))
  }

  private state(channel: string) {
    let state = this.channels.get(channel)
    if (!state) {
      state = { contiguous: 0, above: new Set() }
      this.channels.set(channel, state)
    }
    return state
  }

  private advance(state: { contiguous: number; above: Set<number> }): void {
    while (state.above.delete(state.contiguous + 1)) state.contiguous += 1
  }
}
