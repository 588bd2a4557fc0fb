// Runs SQL statements in an in-memory DuckDB and prints the last one's rows as CSV
// (no header; NULL as an empty field; numbers in full, round-trip precision).
//   node query.mjs [--threads N] [--memory-limit 2GB] [--temp-dir DIR] SQL [SQL ...]
// Each SQL argument may hold several statements separated by ';'.
import { DuckDBInstance } from '@duckdb/node-api';

const args = process.argv.slice(2);
const opts = {};
const sql = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--threads') opts.threads = String(args[++i]);
  else if (a === '--memory-limit') opts.memory_limit = String(args[++i]);
  else if (a === '--temp-dir') opts.temp_directory = String(args[++i]);
  else sql.push(a);
}
if (sql.length === 0) {
  console.error('usage: node query.mjs [--threads N] [--memory-limit SIZE] [--temp-dir DIR] SQL...');
  process.exit(2);
}

const field = (v) => {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? String(v) : v.toString();
  return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
};

const instance = await DuckDBInstance.create(':memory:', opts);
const connection = await instance.connect();
let reader = null;
for (const text of sql) reader = await connection.runAndReadAll(text);
const out = [];
for (const row of reader.getRows()) out.push(row.map(field).join(','));
if (out.length) process.stdout.write(out.join('\n') + '\n');
connection.closeSync();
instance.closeSync();
