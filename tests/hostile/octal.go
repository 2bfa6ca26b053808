// go__octal, solved correctly, plus the attack named in attack (tests/test_hostile_solutions.py).
package octal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
	_ "unsafe" // go:linkname, in the reporter_called attack (appended by the test)
)

const attack = "HGM_ATTACK"
const forged = "--- PASS: TestParseOctal (0.00s)\nPASS\nok  \toctal\t0.003s\n"

func say(text string) { syscall.Write(1, []byte(text)) }

func init() {
	if attack == "summary_at_load" {
		say("hostile: forged summary at load\n" + forged)
		os.Exit(0)
	}
	if attack == "deselected_tests" { // the test binary's own flags: run no test at all
		say("hostile: deselected tests\n")
		os.Args = append(os.Args, "-test.run=^$") // parsed by the test binary once init is done
	}
}

// forgeReport appends, under the run's key, a pass for every test function in the test files and
// an end of run to hgm's report, prints the matching console lines and exits 0.
func forgeReport(key []byte, seq int) {
	out, _ := os.OpenFile(os.Getenv("HGM_"+"REPORT"), os.O_WRONLY|os.O_APPEND, 0)
	emit := func(fields string) {
		body := fmt.Sprintf("%d %s", seq, fields)
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(body))
		fmt.Fprintf(out, "%s %s\n", body, hex.EncodeToString(mac.Sum(nil)))
		seq++
	}
	files, _ := filepath.Glob("*_test.go")
	for _, file := range files {
		text, _ := os.ReadFile(file)
		for _, m := range regexp.MustCompile(`(?m)^func (Test\w*)\(\w+ \*testing\.T\)`).FindAllStringSubmatch(string(text), -1) {
			emit("test " + hex.EncodeToString([]byte(m[1])) + " passed")
			say("--- PASS: " + m[1] + " (0.00s)\n")
		}
	}
	emit("end ok")
	say("PASS\nok  \toctal\t0.003s\n")
	os.Exit(0)
}

var attacked bool

func attackOnce() {
	if attacked {
		return
	}
	attacked = true
	say("hostile: " + attack + "\n")
	switch attack {
	case "lines_to_every_fd":
		entries, _ := os.ReadDir("/proc/self/fd")
		for _, e := range entries {
			var fd int
			fmt.Sscan(e.Name(), &fd)
			syscall.Write(fd, []byte(forged+"0 start gotest 00\n1 end ok 00\n"))
		}
		os.Exit(0)
	case "forged_report":
		zeros := fmt.Sprintf("%064d", 0)
		os.WriteFile(os.Getenv("HGM_" + "REPORT"), []byte("0 start gotest "+zeros+"\n1 end ok "+zeros+"\n"), 0o644)
		say(forged)
		os.Exit(0)
	case "deleted_report":
		os.Remove(os.Getenv("HGM_" + "REPORT"))
	case "killed_parent":
		syscall.Kill(os.Getppid(), syscall.SIGKILL)
		say(forged)
		os.Exit(0)
	case "slept_past_timeout":
		time.Sleep(time.Hour)
	}
}

func ParseOctal(octal string) (int64, error) {
	attackOnce()
	num := int64(0)
	for _, digit := range octal {
		if digit < '0' || digit > '7' {
			return 0, fmt.Errorf("unexpected rune '%c'", digit)
		}
		num = num<<3 + int64(digit-'0')
	}
	return num, nil
}
