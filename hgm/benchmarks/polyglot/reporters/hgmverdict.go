// Package hgmverdict is hgm's Go test reporter: per-test results, signed, to the harness's report
// file (see ../report.py). The harness adds it to the exercise's module with a TestMain that
// calls Run and a call to Track at the top of every test function. The package under test
// imports it, so its init (which reads the run's key from stdin) runs before any of the
// solution's package-level initialisers or init functions.
package hgmverdict

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	mu      sync.Mutex
	key     []byte
	out     *os.File
	seq     int
	running bool
)

func init() {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := os.Stdin.Read(b)
		if n == 0 || err != nil || b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	key = []byte(strings.TrimSpace(string(line)))
	if path := os.Getenv("HGM_REPORT"); len(key) > 0 && path != "" {
		out, _ = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	}
	emit("start", "gotest")
}

func emit(fields ...string) {
	mu.Lock()
	defer mu.Unlock()
	if out == nil {
		return
	}
	body := strings.Join(append([]string{strconv.Itoa(seq)}, fields...), " ")
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(body))
	out.WriteString(body + " " + hex.EncodeToString(mac.Sum(nil)) + "\n")
	seq++
}

// Track records t's result once it and its subtests have finished.
func Track(t *testing.T) {
	t.Cleanup(func() {
		outcome := "passed"
		if t.Failed() {
			outcome = "failed"
		} else if t.Skipped() {
			outcome = "skipped"
		}
		emit("test", hex.EncodeToString([]byte(t.Name())), outcome)
	})
}

// Run runs the tests and records the end of the run with their exit code. Only the first call
// (TestMain's) reports: a testing.M made up while the tests run gets no end-of-run record.
func Run(m *testing.M) int {
	mu.Lock()
	first := !running
	running = true
	mu.Unlock()
	code := m.Run()
	if !first {
		return code
	}
	end := "fail"
	if code == 0 {
		end = "ok"
	}
	emit("end", end)
	return code
}
