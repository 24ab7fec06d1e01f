// Package web is the HTTP face of batchsynth (`batchsynth serve`): health, Prometheus metrics, Asynqmon at
// /monitoring and the JSON API, all but /healthz behind the bearer token.
package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/floridify/batchsynth/internal/pipeline"
	"github.com/floridify/batchsynth/internal/store"
)

// Server serves the HTTP API.
type Server struct {
	Deps     *pipeline.Deps
	RedisOpt asynq.RedisConnOpt
	Token    string
	Log      *slog.Logger
	Registry *prometheus.Registry
}

// Handler returns the routed, authenticated handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	reg := s.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if s.RedisOpt != nil {
		mon := asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: s.RedisOpt, ReadOnly: true})
		mux.Handle("/monitoring/", mon)
	}
	mux.HandleFunc("GET /v1/jobs/{id}", s.getJob)
	mux.HandleFunc("GET /v1/batches/{id}", s.getBatch)
	mux.HandleFunc("GET /v1/batches", s.listBatches)
	return s.auth(mux)
}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || s.Token == "" {
			next.ServeHTTP(w, r)
			return
		}
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
			writeError(w, http.StatusUnauthorized, "unauthorized", "", "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.Deps.Store.Client.Ping(ctx, nil); err != nil {
		writeError(w, http.StatusServiceUnavailable, "mongodb_unreachable", "", "MongoDB does not answer")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	p, err := s.Deps.Progress(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.Deps.Store.Batch(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	bs, err := s.Deps.RecentBatches(r.Context(), nil, 100)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": bs})
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "id", err.Error())
		return
	}
	s.Log.Error("request failed", "error", err)
	writeError(w, http.StatusInternalServerError, "internal", "", "internal error")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, errCode, field, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]string{"code": errCode, "field": field, "message": msg}})
}
