package emulator

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Purposes accepted on upload; batch_output is only given to output and error files.
var uploadPurposes = []string{"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}

const purposeBatchOutput = "batch_output"

type storedFile struct {
	id        string
	filename  string
	purpose   string
	data      []byte // never modified after creation
	createdAt time.Time
	expiresAt time.Time // zero: never
	deleted   bool
}

type fileJSON struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`
}

func (f *storedFile) json() fileJSON {
	return fileJSON{
		ID:        f.id,
		Object:    "file",
		Bytes:     int64(len(f.data)),
		CreatedAt: unix(f.createdAt),
		ExpiresAt: unixPtr(f.expiresAt),
		Filename:  f.filename,
		Purpose:   f.purpose,
		Status:    "processed",
	}
}

// addFileLocked stores a new file. s.mu must be held.
func (s *Server) addFileLocked(filename, purpose string, data []byte, createdAt time.Time, expiresAfter time.Duration) *storedFile {
	f := &storedFile{
		id:        s.newIDLocked("file-", 22),
		filename:  filename,
		purpose:   purpose,
		data:      data,
		createdAt: createdAt,
	}
	if expiresAfter > 0 {
		f.expiresAt = createdAt.Add(expiresAfter)
	}
	s.files[f.id] = f
	s.fileIDs = append(s.fileIDs, f.id)
	return f
}

// lookupFileLocked returns a live file. s.mu must be held.
func (s *Server) lookupFileLocked(id string) (*storedFile, bool) {
	f, ok := s.files[id]
	if !ok || f.deleted {
		return nil, false
	}
	return f, true
}

func writeNoSuchFile(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, "invalid_request_error",
		fmt.Sprintf("No such File object: %s", id), "id", "")
}

func (s *Server) handleUploadFile(w http.ResponseWriter, r *http.Request) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" {
		writeInvalid(w, "The request must be multipart/form-data with the fields 'file' and 'purpose'.", "", "")
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		writeInvalid(w, "Could not read the multipart body: "+err.Error(), "", "")
		return
	}
	var (
		filename, purpose string
		data              []byte
		haveFile          bool
		expiresSeconds    string
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			writeInvalid(w, "Could not read the multipart body: "+err.Error(), "", "")
			return
		}
		switch part.FormName() {
		case "file":
			filename = part.FileName()
			data, err = io.ReadAll(io.LimitReader(part, MaxUploadBytes+1))
			if err != nil {
				writeInvalid(w, "Could not read the uploaded file: "+err.Error(), "file", "")
				return
			}
			if int64(len(data)) > MaxUploadBytes {
				writeInvalid(w, fmt.Sprintf("File is too large: the maximum size is %d bytes.", MaxUploadBytes), "file", "")
				return
			}
			haveFile = true
		case "purpose":
			purpose, err = readField(part)
		case "expires_after[seconds]":
			expiresSeconds, err = readField(part)
		default:
			_, err = io.Copy(io.Discard, io.LimitReader(part, 1<<20))
		}
		_ = part.Close()
		if err != nil {
			writeInvalid(w, "Could not read the multipart body: "+err.Error(), "", "")
			return
		}
	}
	if !haveFile {
		writeInvalid(w, "Missing required parameter: 'file'.", "file", "missing_required_parameter")
		return
	}
	if purpose == "" {
		writeInvalid(w, "Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter")
		return
	}
	if !slices.Contains(uploadPurposes, purpose) {
		writeInvalid(w, fmt.Sprintf("'%s' is not one of %s - 'purpose'", purpose, quoteList(uploadPurposes)), "purpose", "invalid_value")
		return
	}
	if purpose == "batch" && !strings.HasSuffix(strings.ToLower(filename), ".jsonl") {
		writeInvalid(w, "Invalid file format for Batch API. Must be .jsonl", "", "")
		return
	}
	var expiresAfter time.Duration
	if purpose == "batch" {
		expiresAfter = FileExpiryDefault
	}
	if expiresSeconds != "" {
		secs, err := strconv.ParseInt(expiresSeconds, 10, 64)
		if err != nil || secs < 3600 || secs > 2592000 {
			writeInvalid(w, "Invalid 'expires_after[seconds]': must be an integer between 3600 and 2592000.", "expires_after[seconds]", "invalid_value")
			return
		}
		expiresAfter = time.Duration(secs) * time.Second
	}

	s.mu.Lock()
	f := s.addFileLocked(filename, purpose, data, s.cfg.Now(), expiresAfter)
	s.stats.FilesUploaded++
	body := f.json()
	s.mu.Unlock()

	s.log.Debug("file uploaded", slog.String("file_id", body.ID), slog.String("filename", filename),
		slog.String("purpose", purpose), slog.Int64("bytes", body.Bytes))
	writeJSON(w, http.StatusOK, body)
}

func readField(p *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(p, 64<<10))
	return strings.TrimSpace(string(b)), err
}

func quoteList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = "'" + v + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func (s *Server) handleListFiles(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, msg := parseLimit(r, 10000, 10000)
	if msg != "" {
		writeInvalid(w, msg, "limit", "invalid_value")
		return
	}
	order := q.Get("order")
	switch order {
	case "":
		order = "desc"
	case "asc", "desc":
	default:
		writeInvalid(w, fmt.Sprintf("Invalid 'order': expected 'asc' or 'desc', got %q.", order), "order", "invalid_value")
		return
	}
	purpose, after := q.Get("purpose"), q.Get("after")

	s.mu.Lock()
	live := make([]*storedFile, 0, len(s.fileIDs))
	for _, id := range s.fileIDs {
		if f, ok := s.lookupFileLocked(id); ok && (purpose == "" || f.purpose == purpose) {
			live = append(live, f)
		}
	}
	if order == "desc" {
		slices.Reverse(live)
	}
	start := 0
	if after != "" {
		start = len(live) // an unknown cursor yields an empty page
		if i := slices.IndexFunc(live, func(f *storedFile) bool { return f.id == after }); i >= 0 {
			start = i + 1
		}
	}
	end := min(start+limit, len(live))
	page := make([]fileJSON, 0, end-start)
	for _, f := range live[start:end] {
		page = append(page, f.json())
	}
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, newList(page, func(f fileJSON) string { return f.ID }, end < len(live)))
}

func (s *Server) handleGetFile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("file_id")
	s.mu.Lock()
	f, ok := s.lookupFileLocked(id)
	var body fileJSON
	if ok {
		body = f.json()
	}
	s.mu.Unlock()
	if !ok {
		writeNoSuchFile(w, id)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) handleFileContent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("file_id")
	s.mu.Lock()
	f, ok := s.lookupFileLocked(id)
	var data []byte
	if ok {
		data = f.data // immutable; safe to write after unlocking
	}
	s.mu.Unlock()
	if !ok {
		writeNoSuchFile(w, id)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

func (s *Server) handleDeleteFile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("file_id")
	s.mu.Lock()
	f, ok := s.lookupFileLocked(id)
	if ok {
		f.deleted = true
		f.data = nil
		s.fileIDs = slices.DeleteFunc(s.fileIDs, func(v string) bool { return v == id })
	}
	s.mu.Unlock()
	if !ok {
		writeNoSuchFile(w, id)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Deleted bool   `json:"deleted"`
	}{ID: id, Object: "file", Deleted: true})
}
