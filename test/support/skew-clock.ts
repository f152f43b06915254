// Preloaded with `node --import` into an app under test: shifts its wall clock (Date) by
// JOBGATE_TEST_CLOCK_SKEW_SECONDS, like Debian's `faketime -f '+600s'` (FAULTS.md M13), without
// needing faketime installed. Timers and performance.now() are untouched, as with faketime.
const skewMs = Number(process.env.JOBGATE_TEST_CLOCK_SKEW_SECONDS ?? '0') * 1000;
if (skewMs !== 0) {
  const RealDate = Date;
  const realNow = Date.now.bind(Date);
  const Skewed = function (this: unknown, ...args: unknown[]) {
    if (!new.target) return new RealDate(realNow() + skewMs).toString();
    return args.length === 0 ? new RealDate(realNow() + skewMs) : Reflect.construct(RealDate, args, new.target);
  } as unknown as DateConstructor;
  Object.setPrototypeOf(Skewed, RealDate);
  Object.defineProperty(Skewed, 'prototype', { value: RealDate.prototype });
  Object.defineProperty(Skewed, 'now', { value: () => realNow() + skewMs });
  globalThis.Date = Skewed;
}
