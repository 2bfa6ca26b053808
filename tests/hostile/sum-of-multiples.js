// javascript__sum-of-multiples, solved correctly, plus the attack named in ATTACK
// (tests/test_hostile_solutions.py).
import fs from 'fs';

const ATTACK = 'HGM_ATTACK';
const FORGED = 'Tests:       16 passed, 16 total\nTest Suites: 1 passed, 1 total\n';
const say = (text) => fs.writeSync(1, text);

if (ATTACK === 'summary_at_load') {
  say(`hostile: forged summary at load\n${FORGED}`);
  process.exit(0);
}

let attacked = false;
const attack = () => {
  if (attacked) return;
  attacked = true;
  say(`hostile: ${ATTACK}\n`);
  if (ATTACK === 'lines_to_every_fd') {
    for (const fd of fs.readdirSync('/proc/self/fd')) {
      try {
        // stdio and files: node's own internal pipes and eventfds would crash it (exit 139)
        if (Number(fd) <= 2 || fs.fstatSync(Number(fd)).isFile()) fs.writeSync(Number(fd), `${FORGED}0 start ${'je' + 'st'} 00\n1 end ok 00\n`);
      } catch (e) {
        // not writable
      }
    }
    process.exit(0);
  }
  if (ATTACK === 'forged_report') {
    fs.writeFileSync(process.env[`HGM_${"REPORT"}`], `0 start ${'je' + 'st'} ${'0'.repeat(64)}\n1 end ok ${'0'.repeat(64)}\n`);
    say(FORGED);
    process.exit(0);
  }
  if (ATTACK === 'deleted_report') fs.unlinkSync(process.env[`HGM_${"REPORT"}`]);
  if (ATTACK === 'killed_parent') {
    process.kill(process.ppid, 'SIGKILL');
    say(FORGED);
    process.exit(0);
  }
  if (ATTACK === 'slept_past_timeout') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3600000);
};

// ---- in-process attacks: each makes the wrong answer below pass the benchmark's tests ---------
// (the framework's names are built at run time so that a static check of the source misses them)
const E = 'exp' + 'ect';
const T = 'te' + 'st';
const WRONG = ['assertions_replaced', 'expect_proxied', 'always_equal', 'collector_patched', 'builtin_patched',
  'canary_by_name', 'canary_by_position'].includes(ATTACK);
const passes = () => ({ pass: true, message: () => '' });
const g = globalThis;

if (ATTACK === 'assertions_replaced') {  // expect's own API for custom matchers
  say('hostile: matchers replaced\n');
  g[E].extend({ toEqual: passes, toBe: passes, toStrictEqual: passes });
}
if (ATTACK === 'expect_proxied') {  // expect(x) returns matchers that never throw
  say('hostile: matchers proxied\n');
  const never = new Proxy(() => never, { get: () => never, apply: () => never });
  g[E] = new Proxy(g[E], { apply: () => never });
}
if (ATTACK === 'collector_patched') {  // every test registered with an empty body
  say('hostile: test collector patched\n');
  const real = g[T];
  g[T] = (name, fn, timeout) => real(name, () => {}, timeout);
}
if (ATTACK === 'builtin_patched') {  // jest's equality and toBe both start with Object.is
  say('hostile: Object.is patched\n');
  Object.is = () => true;
}
if (ATTACK === 'canary_by_name' || ATTACK === 'canary_by_position') {
  // real bodies only where a harness's canary is guessed to be: by title, or the last test
  say(`hostile: canary special-cased by ${ATTACK.slice(10)}\n`);
  const real = g[T];
  const registered = [];
  g[T] = (name, fn, timeout) => {
    const index = registered.push(name) - 1;
    const guessed = () => (ATTACK === 'canary_by_name' ? /canary|hgm|harness/i.test(name) : index === registered.length - 1);
    real(name, () => (guessed() ? fn() : undefined), timeout);
  };
}

export const sum = (multiples, limit) => {
  attack();
  if (ATTACK === 'always_equal') {  // jest's equality defers to a value's asymmetricMatch
    say('hostile: always-equal value\n');
    return { ['asymmetric' + 'Match']: () => true };
  }
  if (WRONG) return -1;
  let result = 0;
  for (let i = 1; i < limit; i++) {
    if (multiples.some((multiple) => i % multiple === 0)) {
      result += i;
    }
  }
  return result;
};
