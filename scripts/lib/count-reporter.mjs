// A node:test reporter that counts what ran, for run-tests.mjs's summary line. Unlike the TAP
// totals it counts a skipped describe() as one skipped test (its tests are never reported), and a
// suite only when the suite itself failed (a hook), not because a test in it did.
export default async function* countReporter(source) {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { skip, todo, details } = event.data;
    const suite = details?.type === 'suite';
    if (event.type === 'test:fail') {
      if (!(suite && details.error?.failureType === 'subtestsFailed')) counts.failed++;
    } else if ((skip !== undefined && skip !== false) || (todo !== undefined && todo !== false)) {
      counts.skipped++;
    } else if (!suite) {
      counts.passed++;
    }
  }
  yield `${JSON.stringify(counts)}\n`;
}
