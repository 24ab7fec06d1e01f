package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/floridify/batchsynth/internal/openaibatch"
)

// UploadStreamed is the upload proposed for openaibatch.Client.Upload (docs/benchmarks.md, "Profile"): it
// sends the same multipart body as the SDK's Files.New, but streams the file into it instead of building the
// whole body in memory first (openai-go v3.96 marshals multipart bodies into a bytes.Buffer: a 165 MB input
// file costs 165 MB of heap and more while the buffer grows). The body is framed around a section of the
// file, so its Content-Length is exact, and the middleware builds it afresh for every attempt, so the SDK's
// retries still work (a request without a body of its own counts as replayable). The bench package holds it
// so that the benchmarks measure it side by side with the current Upload; it is meant to move into
// internal/openaibatch.
func UploadStreamed(ctx context.Context, c *openaibatch.Client, name string, r io.Reader) (string, error) {
	ra, off, size, ok := sized(r)
	if !ok {
		return c.Upload(ctx, name, r)
	}
	head, tail, contentType, err := multipartFrame(name)
	if err != nil {
		return "", err
	}
	var f openai.FileObject
	err = c.OpenAI().Post(ctx, "files", nil, &f, option.WithMiddleware(
		func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
			req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(head), io.NewSectionReader(ra, off, size), bytes.NewReader(tail)))
			req.ContentLength = int64(len(head)) + size + int64(len(tail))
			req.Header.Set("Content-Type", contentType)
			return next(req)
		}))
	if err != nil {
		return "", fmt.Errorf("error uploading %s: %w", name, err)
	}
	return f.ID, nil
}

// sized returns r as a ReaderAt with the offset and length of what is left to read, when r can say (an
// *os.File can).
func sized(r io.Reader) (io.ReaderAt, int64, int64, bool) {
	ra, ok1 := r.(io.ReaderAt)
	sk, ok2 := r.(io.Seeker)
	if !ok1 || !ok2 {
		return nil, 0, 0, false
	}
	off, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, 0, false
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, 0, 0, false
	}
	if _, err := sk.Seek(off, io.SeekStart); err != nil {
		return nil, 0, 0, false
	}
	return ra, off, end - off, true
}

var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"")

// multipartFrame returns the bytes before and after the file's content in a files upload body (fields
// purpose=batch and file), and the body's content type.
func multipartFrame(name string) (head, tail []byte, contentType string, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("purpose", string(openai.FilePurposeBatch)); err != nil {
		return nil, nil, "", err
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, quoteEscaper.Replace(name)))
	h.Set("Content-Type", "application/jsonl")
	if _, err := mw.CreatePart(h); err != nil {
		return nil, nil, "", err
	}
	head = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, nil, "", err
	}
	return head, bytes.Clone(buf.Bytes()), mw.FormDataContentType(), nil
}
