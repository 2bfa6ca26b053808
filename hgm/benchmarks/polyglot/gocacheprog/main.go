// gocacheprog is a GOCACHEPROG (Go >= 1.24) with two layers: a shared read-only layer, prepared
// once by trusted code (the standard library compiled for the Polyglot tests), and a per-evaluation
// writable layer. Sandboxed agent code can read the shared layer but never change it, so a build
// cache shared across evaluations cannot be poisoned.
//
// Usage: GOCACHEPROG="gocacheprog RO_DIR RW_DIR" (RO_DIR may be "-" for none; warming writes RW_DIR).
// Layout of a layer: a/<action hex> holds "<output hex> <size> <unix nanos>", o/<output hex> the body.
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type request struct {
	ID       int64
	Command  string
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	BodySize int64  `json:",omitempty"`
}

type response struct {
	ID            int64
	Err           string     `json:",omitempty"`
	KnownCommands []string   `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}

func lookup(dir string, action []byte) (response, bool) {
	if dir == "" || dir == "-" {
		return response{}, false
	}
	meta, err := os.ReadFile(filepath.Join(dir, "a", hex.EncodeToString(action)))
	if err != nil {
		return response{}, false
	}
	f := strings.Fields(string(meta))
	if len(f) != 3 {
		return response{}, false
	}
	out, err1 := hex.DecodeString(f[0])
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	nanos, err3 := strconv.ParseInt(f[2], 10, 64)
	path := filepath.Join(dir, "o", f[0])
	st, err4 := os.Stat(path)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || st.Size() != size {
		return response{}, false
	}
	t := time.Unix(0, nanos)
	return response{OutputID: out, Size: size, Time: &t, DiskPath: path}, true
}

func put(dir string, req request, body []byte) (string, error) {
	for _, sub := range []string{"a", "o"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return "", err
		}
	}
	outHex := hex.EncodeToString(req.OutputID)
	path := filepath.Join(dir, "o", outHex)
	if err := writeAtomic(path, body); err != nil {
		return "", err
	}
	meta := fmt.Sprintf("%s %d %d\n", outHex, len(body), time.Now().UnixNano())
	return path, writeAtomic(filepath.Join(dir, "a", hex.EncodeToString(req.ActionID)), []byte(meta))
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gocacheprog RO_DIR|- RW_DIR")
		os.Exit(2)
	}
	roDir, rwDir := os.Args[1], os.Args[2]
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	dec := json.NewDecoder(in)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.Encode(response{KnownCommands: []string{"get", "put", "close"}})
	out.Flush()
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return
		}
		var body []byte
		if req.Command == "put" && req.BodySize > 0 {
			if err := dec.Decode(&body); err != nil {
				fmt.Fprintln(os.Stderr, "gocacheprog: reading body:", err)
				os.Exit(1)
			}
		}
		res := response{ID: req.ID}
		switch req.Command {
		case "get":
			if hit, ok := lookup(rwDir, req.ActionID); ok {
				res = hit
			} else if hit, ok := lookup(roDir, req.ActionID); ok {
				res = hit
			} else {
				res.Miss = true
			}
			res.ID = req.ID
		case "put":
			path, err := put(rwDir, req, body)
			if err != nil {
				res.Err = err.Error()
			}
			res.DiskPath = path
		case "close":
			enc.Encode(res)
			out.Flush()
			return
		default:
			res.Err = "unknown command " + req.Command
		}
		enc.Encode(res)
		out.Flush()
	}
}
