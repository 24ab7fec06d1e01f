package openaibatch

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
)

// Upload stores a batch input file (purpose "batch") and returns its id.
//
// openai-go v3 marshals a multipart body into a bytes.Buffer before sending it, so a 165 MB input file
// would cost 165 MB of heap and more while the buffer grows. When r can say its size (an *os.File can),
// Upload sends the same multipart body with the file streamed into it instead: the body is framed around a
// section of the file, so its Content-Length is exact, and the middleware builds it afresh for every
// attempt, so the SDK's retries resend it whole. Other readers go through the SDK's own path.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader) (string, error) {
	ra, off, size, ok := sized(r)
	if !ok {
		f, err := c.oa.Files.New(ctx, openai.FileNewParams{File: openai.File(r, name, "application/jsonl"), Purpose: openai.FilePurposeBatch})
		if err != nil {
			return "", fmt.Errorf("error uploading %s: %w", name, err)
		}
		return f.ID, nil
	}
	head, tail, contentType, err := multipartFrame(name)
	if err != nil {
		return "", err
	}
	var f openai.FileObject
	err = c.oa.Post(ctx, "files", nil, &f, option.WithMiddleware(
		func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
			body := func() io.ReadCloser {
				return io.NopCloser(io.MultiReader(bytes.NewReader(head), io.NewSectionReader(ra, off, size), bytes.NewReader(tail)))
			}
			req.Body = body()
			req.GetBody = func() (io.ReadCloser, error) { return body(), nil }
			req.ContentLength = int64(len(head)) + size + int64(len(tail))
			req.Header.Set("Content-Type", contentType)
			return next(req)
		}))
	if err != nil {
		return "", fmt.Errorf("error uploading %s: %w", name, err)
	}
	return f.ID, nil
}

// sized returns r as a ReaderAt with the offset and length of what is left to read, when r can say.
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
