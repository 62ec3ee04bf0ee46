package cni

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// parseLevel reads log_level as Calico writes it ("debug", "info",
// "warning", "error"; any case). Empty means the default.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warning", "warn":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not a log level (debug, info, warning, error)", s)
}

// NewLogger returns the logger a plugin invocation uses: to log_file_path
// when set (appending; the directory is created), otherwise to stderr,
// where runtimes usually show it, with only warnings and errors unless
// log_level asks for more. The returned closer closes the file.
func NewLogger(conf *NetConf, plugin string, stderr io.Writer) (*slog.Logger, func()) {
	level, _ := parseLevel(conf.LogLevel) // checked by LoadNetConf
	w := stderr
	closer := func() {}
	if conf.LogFilePath != "" {
		if err := os.MkdirAll(filepath.Dir(conf.LogFilePath), 0o755); err == nil {
			if f, err := os.OpenFile(conf.LogFilePath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				w = f
				closer = func() { _ = f.Close() }
			}
		}
	} else if conf.LogLevel == "" {
		level = slog.LevelWarn
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(h).With("component", plugin, "pid", os.Getpid()), closer
}
