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
        if (Number(fd) <= 2 || fs.fstatSync(Number(fd)).isFile()) fs.writeSync(Number(fd), `${FORGED}0 start jest 00\n1 end ok 00\n`);
      } catch (e) {
        // not writable
      }
    }
    process.exit(0);
  }
  if (ATTACK === 'forged_report') {
    fs.writeFileSync(process.env.HGM_REPORT, `0 start jest ${'0'.repeat(64)}\n1 end ok ${'0'.repeat(64)}\n`);
    say(FORGED);
    process.exit(0);
  }
  if (ATTACK === 'deleted_report') fs.unlinkSync(process.env.HGM_REPORT);
  if (ATTACK === 'killed_parent') {
    process.kill(process.ppid, 'SIGKILL');
    say(FORGED);
    process.exit(0);
  }
  if (ATTACK === 'slept_past_timeout') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3600000);
};

export const sum = (multiples, limit) => {
  attack();
  let result = 0;
  for (let i = 1; i < limit; i++) {
    if (multiples.some((multiple) => i % multiple === 0)) {
      result += i;
    }
  }
  return result;
};
