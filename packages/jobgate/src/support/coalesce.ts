/**
 * Group commit: calls that come while `maxInFlight` flushes are already under way wait, and go
 * together (up to `maxItems`) in the next flush as soon as one ends. A call that finds a flush free
 * goes at the end of this turn of the event loop, with whatever else was asked in it. There is no
 * timer: an idle caller waits for nothing, and under load one round trip carries many calls (a
 * fetched batch's claims, the settles of jobs that end together, the claims of several fetcher
 * workers).
 *
 * `flush` answers each item in order; when it throws, every call of that flush rejects with the
 * error (the callers retry as they would a single call).
 */
export function coalesce<I, O>(flush: (items: I[]) => Promise<O[]>, options: { maxItems: number; maxInFlight?: number }): (item: I) => Promise<O> {
  const maxInFlight = options.maxInFlight ?? 2;
  const waiting: Array<{ item: I; resolve: (out: O) => void; reject: (err: unknown) => void }> = [];
  let inFlight = 0;
  let scheduled = false;

  function pump(): void {
    scheduled = false;
    while (inFlight < maxInFlight && waiting.length > 0) {
      const batch = waiting.splice(0, options.maxItems);
      inFlight++;
      flush(batch.map((b) => b.item))
        .then((outs) => {
          if (outs.length !== batch.length) throw new Error(`coalesce: flush answered ${outs.length} of ${batch.length} items`);
          batch.forEach((b, i) => b.resolve(outs[i]!));
        })
        .catch((err: unknown) => batch.forEach((b) => b.reject(err)))
        .finally(() => {
          inFlight--;
          pump();
        });
    }
  }

  return (item) =>
    new Promise<O>((resolve, reject) => {
      waiting.push({ item, resolve, reject });
      // the rest of this turn of the event loop's calls join it (not only this microtask run's: the
      // attempts a fetch started end in one turn, but each after promise steps of its own)
      if (!scheduled) {
        scheduled = true;
        setImmediate(pump);
      }
    });
}
