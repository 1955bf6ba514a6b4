// Parses an AsyncAPI document with the official parser (@asyncapi/parser) and prints its diagnostics as JSON:
// {"parser": VERSION, "valid": bool, "diagnostics": [{code, message, path, severity}]}; severity 0 error,
// 1 warning, 2 info, 3 hint (Spectral's scale). Exit 0 when it ran (valid or not), 2 on a usage or I/O error.
// Usage: node check.js PATH
'use strict';
const fs = require('fs');
const path = require('path');
const { Parser } = require('@asyncapi/parser');

async function main() {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node check.js ASYNCAPI.json\n');
    process.exit(2);
  }
  const text = fs.readFileSync(file, 'utf8');
  const parser = new Parser();
  // source: relative $refs (none today) resolve against the document's own folder
  const { document, diagnostics } = await parser.parse(text, { source: path.resolve(file) });
  const version = require('@asyncapi/parser/package.json').version;
  const out = diagnostics.map((d) => ({ code: d.code, message: d.message, path: d.path, severity: d.severity }));
  const report = { parser: version, valid: document !== undefined, diagnostics: out };
  process.stdout.write(JSON.stringify(report, null, 1) + '\n');
}

main().catch((err) => {
  process.stderr.write(`check.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(2);
});
