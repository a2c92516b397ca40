// Prints every test of the suite as JSON lines: suite, id, name, kind, depends_on, browser_only.
import tests from './node_modules/http-cache-tests/tests/index.mjs'
import surrogate from './node_modules/http-cache-tests/tests/surrogate-control.mjs'

tests.push(surrogate)
const out = []
for (const suite of tests) {
  for (const test of suite.tests) {
    out.push({
      suite: suite.name,
      suite_id: suite.id,
      id: test.id,
      name: test.name,
      kind: test.kind || 'required',
      depends_on: test.depends_on || [],
      browser_only: test.browser_only === true
    })
  }
}
console.log(JSON.stringify(out))
