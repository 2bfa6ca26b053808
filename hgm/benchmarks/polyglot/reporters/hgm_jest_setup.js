// hgm's jest setup file (--setupFilesAfterEnv): runs in each test file's environment after jest
// installed its globals and before the test file (and so the solution) is loaded. It takes a
// snapshot of the assertion entry points (expect, its matchers, the test/describe/hook globals)
// and of the built-in functions jest's equality relies on (Object.is, Object.keys, ...), and
// compares them after every test and after the file. A difference fails the test file with a
// message starting "hgm-tamper:", which hgm's reporter (hgm_jest_reporter.js) turns into a
// signed tampering record. See ../scoring.py.
'use strict';

const MARK = 'hgm-tamper:';
// Everything the check itself uses is captured now, and it loops by index over plain objects, so
// that patching a built-in method later cannot blind it.
const g = globalThis;
const { is, create, getOwnPropertyDescriptor, getPrototypeOf } = Object;
const { ownKeys } = Reflect;
const [ErrorC, StringC] = [Error, String];
const matchersKey = Symbol.for('$$jest-matchers-object');
const GLOBALS = ['expect', 'test', 'it', 'describe', 'xtest', 'xit', 'xdescribe', 'fit', 'fdescribe',
  'beforeAll', 'beforeEach', 'afterAll', 'afterEach', 'jest'];
const BUILTINS = ['Object', 'Array', 'Function', 'Reflect', 'JSON', 'Math', 'Number', 'String', 'Symbol', 'Boolean',
  'BigInt', 'Map', 'Set', 'WeakMap', 'Error', 'Promise', 'Date', 'RegExp', 'ArrayBuffer', 'DataView'];

function snapshot() {
  const entries = create(null); // label -> [value or getter, setter]
  const own = (label, obj) => {
    if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) return;
    const keys = ownKeys(obj);
    for (let i = 0; i < keys.length; i++) {
      const d = getOwnPropertyDescriptor(obj, keys[i]);
      entries[label + '.' + StringC(keys[i])] = ['value' in d ? d.value : d.get, d.set];
    }
  };
  for (let i = 0; i < GLOBALS.length; i++) {
    entries[GLOBALS[i]] = [g[GLOBALS[i]], undefined];
    own(GLOBALS[i], g[GLOBALS[i]]);
  }
  const state = g[matchersKey];
  entries['jest matchers'] = [state && state.matchers, undefined];
  if (state) own('matchers', state.matchers);
  for (let i = 0; i < BUILTINS.length; i++) {
    const value = g[BUILTINS[i]];
    entries[BUILTINS[i]] = [value, undefined];
    own(BUILTINS[i], value);
    if (typeof value === 'function' && value.prototype) own(BUILTINS[i] + '.prototype', value.prototype);
  }
  entries['Function.prototype (of expect)'] = [getPrototypeOf(g.expect), undefined];
  return entries;
}

// Replaced by the core-js polyfills that the exercises' babel preset (useBuiltIns: usage) adds to
// a solution that uses them, on Node 20 (neither decides an assertion).
const UNWATCHED = create(null);
UNWATCHED['Function.prototype.toString'] = true;
UNWATCHED['Array.prototype.push'] = true;
const before = snapshot();

function isWatched(label) {  // a new matcher (expect.extend) or new property of a framework global
  if (label.indexOf('matchers.') === 0) return true;
  for (let i = 0; i < GLOBALS.length; i++) if (label.indexOf(GLOBALS[i] + '.') === 0) return true;
  return false;
}

function check(when) {
  const now = snapshot();
  let changed = '';
  let count = 0;
  const note = (label) => {
    count += 1;
    if (count <= 5) changed += (count > 1 ? ', ' : '') + label;
  };
  const labels = ownKeys(before);
  for (let i = 0; i < labels.length; i++) {
    const was = before[labels[i]];
    const is_ = now[labels[i]];
    if (!UNWATCHED[labels[i]] && (is_ === undefined || !is(is_[0], was[0]) || !is(is_[1], was[1]))) note(labels[i]);
  }
  const added = ownKeys(now);
  for (let i = 0; i < added.length; i++) if (before[added[i]] === undefined && isWatched(added[i])) note(added[i]);
  if (count) throw new ErrorC(MARK + ' ' + when + ': the test framework was changed: ' + changed);
}

afterEach(() => check('after a test'));
afterAll(() => check('after the tests'));
