// hgm's jest reporter: per-test results, signed, to the harness's report file (see ../report.py).
// Constructed in jest's main process before any test file (and so before the solution) is
// loaded; it reads the run's key from stdin there, then signs every record it writes: per test,
// and a `tamper` record when hgm_jest_setup.js found the test framework changed.
'use strict';
const crypto = require('crypto');
const fs = require('fs');

const TAMPER_MARK = 'hgm-tamper:';

function readKey() {
  const buf = Buffer.alloc(128);
  let text = '';
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); // stdin not ready yet
        continue;
      }
      if (e.code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    text += buf.toString('latin1', 0, n);
    if (text.includes('\n')) break;
  }
  return text.trim();
}

class HgmReporter {
  constructor() {
    const key = readKey();
    const path = process.env.HGM_REPORT;
    this.seq = 0;
    this.emit = () => {};
    if (key && path) {
      const out = fs.openSync(path, 'a', 0o600);
      this.emit = (...fields) => {
        const body = [String(this.seq), ...fields].join(' ');
        const tag = crypto.createHmac('sha256', key).update(body).digest('hex');
        fs.writeSync(out, `${body} ${tag}\n`);
        this.seq += 1;
      };
    }
    this.emit('start', 'jest');
  }

  onTestResult(test, testResult) {
    // hgm_jest_setup.js's check failed: the test framework changed while the file ran
    const messages = [testResult.failureMessage || '', (testResult.testExecError || {}).message || '',
      ...testResult.testResults.flatMap((r) => r.failureMessages || [])];
    const found = messages.join('\n').split('\n').find((line) => line.includes(TAMPER_MARK));
    if (found) {
      const what = found.slice(found.indexOf(TAMPER_MARK) + TAMPER_MARK.length).trim().slice(0, 500);
      this.emit('tamper', Buffer.from(what, 'utf8').toString('hex'));
    }
    for (const r of testResult.testResults) {
      const name = [...r.ancestorTitles, r.title].join(' > ');
      const outcome = r.status === 'passed' ? 'passed' : r.status === 'failed' ? 'failed' : 'skipped';
      this.emit('test', Buffer.from(name, 'utf8').toString('hex'), outcome);
    }
  }

  onRunComplete(contexts, results) {
    const ok = results.numFailedTests === 0 && results.numFailedTestSuites === 0 && results.numRuntimeErrorTestSuites === 0;
    this.emit('end', ok ? 'ok' : 'fail');
  }

  getLastError() {
    return undefined;
  }
}

module.exports = HgmReporter;
