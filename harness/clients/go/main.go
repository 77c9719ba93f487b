// The official Go SDK (github.com/anthropics/anthropic-sdk-go) as a contract client.
//
// Reads the conversation from STREAMCHAOS_SCRIPT, performs it with client.Messages.NewStreaming
// (accumulating every event with Message.Accumulate) or client.Messages.New, prints one JSON line
// per turn and exits 0 on success. On an error it prints {"turn": i, "error": "<Go type>: <message>"}
// and exits 1. The SDK itself reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL; Go's crypto/x509
// reads SSL_CERT_FILE on Linux. Transport: the SDK's default, net/http's, which speaks h2 over TLS
// (ALPN) and HTTP/1.1 over plain http. The script's max_retries and timeout_s (seconds; per attempt,
// option.WithRequestTimeout, which covers the whole attempt, body included), or
// STREAMCHAOS_MAX_RETRIES / STREAMCHAOS_TIMEOUT_S (the environment wins), override the SDK defaults.
// A turn's idle_before_s is slept first (a tool running between turns); parallel: N sends N requests
// at once (parts of one turn, each its own conversation whose prompt ends with "\n(part k of N)"),
// prints a line per part with "part": k (in part order, once all have finished) and exits 1 if any
// failed; the conversation goes on with part 0.
//
// It behaves like harness/clients/programs/python_sdk_client.py: same request bodies (the assistant turn is
// echoed with Message.ToParam, tool results are {"type":"tool_result","tool_use_id":ID,"content":"ok"}),
// same output keys.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"github.com/anthropics/anthropic-sdk-go/packages/param"
)

type scriptTurn struct {
	Prompt     string          `json:"prompt"`
	Stream     *bool           `json:"stream"`
	Thinking   bool            `json:"thinking"`
	Tools      json.RawMessage `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
	MaxTokens  *int64          `json:"max_tokens"`
	IdleBefore *flexNumber     `json:"idle_before_s"`
	Parallel   *flexNumber     `json:"parallel"`
}

type script struct {
	Model      *string      `json:"model"`
	MaxTokens  *int64       `json:"max_tokens"`
	MaxRetries *flexNumber  `json:"max_retries"`
	TimeoutS   *flexNumber  `json:"timeout_s"`
	Turns      []scriptTurn `json:"turns"`
}

// flexNumber is a script number given as a JSON number or as a string ("2", "0.5"), as the Python
// client's int()/float() take either; it keeps the text and is parsed where it is used.
type flexNumber string

func (n *flexNumber) UnmarshalJSON(data []byte) error {
	var text string
	if err := json.Unmarshal(data, &text); err == nil {
		*n = flexNumber(text)
		return nil
	}
	var number json.Number
	if err := json.Unmarshal(data, &number); err != nil {
		return err
	}
	*n = flexNumber(number)
	return nil
}

type toolUse struct {
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

type usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

type summary struct {
	Turn       int       `json:"turn"`
	StopReason string    `json:"stop_reason"`
	Text       string    `json:"text"`
	Thinking   string    `json:"thinking"`
	ToolUses   []toolUse `json:"tool_uses"`
	Usage      usage     `json:"usage"`
	ElapsedMs  float64   `json:"elapsed_ms"`
	Part       *int      `json:"part,omitempty"`
}

func printLine(value any) {
	line, err := json.Marshal(value)
	if err != nil {
		line = []byte(fmt.Sprintf(`{"turn": -1, "error": %q}`, err.Error()))
	}
	os.Stdout.Write(append(line, '\n'))
}

type failure struct {
	Turn  int    `json:"turn"`
	Error string `json:"error"`
	Part  *int   `json:"part,omitempty"`
}

func describe(err error) string {
	return fmt.Sprintf("%T: %v", err, err)
}

func fail(turn int, err error) int {
	printLine(failure{Turn: turn, Error: describe(err)})
	return 1
}

// setting is the environment's value if set, else the script's (os.environ.get(name, script[key])).
func setting(envName string, fromScript *flexNumber) (string, bool) {
	if v, ok := os.LookupEnv(envName); ok {
		return v, true
	}
	if fromScript != nil {
		return string(*fromScript), true
	}
	return "", false
}

func clientOptions(p script) ([]option.RequestOption, error) {
	var opts []option.RequestOption
	if v, ok := setting("STREAMCHAOS_MAX_RETRIES", p.MaxRetries); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("max_retries: %w", err)
		}
		opts = append(opts, option.WithMaxRetries(n))
	}
	if v, ok := setting("STREAMCHAOS_TIMEOUT_S", p.TimeoutS); ok {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("timeout_s: %w", err)
		}
		opts = append(opts, option.WithRequestTimeout(time.Duration(s*float64(time.Second))))
	}
	return opts, nil
}

func requestParams(p script, turn scriptTurn, messages []anthropic.MessageParam) (anthropic.MessageNewParams, error) {
	params := anthropic.MessageNewParams{Model: "claude-sonnet-4-6", MaxTokens: 1024, Messages: messages}
	if p.Model != nil {
		params.Model = anthropic.Model(*p.Model)
	}
	if turn.MaxTokens != nil {
		params.MaxTokens = *turn.MaxTokens
	} else if p.MaxTokens != nil {
		params.MaxTokens = *p.MaxTokens
	}
	if turn.Thinking {
		params.Thinking = anthropic.ThinkingConfigParamOfEnabled(1024)
	}
	if len(turn.Tools) > 0 && string(turn.Tools) != "null" {
		if err := json.Unmarshal(turn.Tools, &params.Tools); err != nil {
			return params, fmt.Errorf("tools: %w", err)
		}
	}
	if len(turn.ToolChoice) > 0 && string(turn.ToolChoice) != "null" {
		if err := json.Unmarshal(turn.ToolChoice, &params.ToolChoice); err != nil {
			return params, fmt.Errorf("tool_choice: %w", err)
		}
	}
	return params, nil
}

func summarize(turn int, message *anthropic.Message, started time.Time) summary {
	s := summary{Turn: turn, StopReason: string(message.StopReason), ToolUses: []toolUse{}}
	for _, block := range message.Content {
		switch block.Type {
		case "text":
			s.Text += block.Text
		case "thinking":
			s.Thinking += block.Thinking
		case "tool_use":
			input := block.Input
			if len(input) == 0 {
				input = json.RawMessage("{}")
			}
			s.ToolUses = append(s.ToolUses, toolUse{ID: block.ID, Name: block.Name, Input: input})
		}
	}
	s.Usage = usage{InputTokens: message.Usage.InputTokens, OutputTokens: message.Usage.OutputTokens}
	s.ElapsedMs = math.Round(float64(time.Since(started).Microseconds())/100) / 10
	return s
}

func perform(ctx context.Context, client anthropic.Client, params anthropic.MessageNewParams, stream bool) (*anthropic.Message, error) {
	if !stream {
		return client.Messages.New(ctx, params)
	}
	events := client.Messages.NewStreaming(ctx, params)
	defer events.Close()
	message := anthropic.Message{}
	for events.Next() {
		if err := message.Accumulate(events.Current()); err != nil {
			return nil, err
		}
	}
	if err := events.Err(); err != nil {
		return nil, err
	}
	return &message, nil
}

type outcome struct {
	message *anthropic.Message
	err     error
}

func run() int {
	var p script
	raw := []byte(os.Getenv("STREAMCHAOS_SCRIPT"))
	if len(raw) == 0 { // a script too large for the environment comes in a file
		var err error
		if raw, err = os.ReadFile(os.Getenv("STREAMCHAOS_SCRIPT_FILE")); err != nil {
			return fail(0, fmt.Errorf("STREAMCHAOS_SCRIPT_FILE: %w", err))
		}
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return fail(0, fmt.Errorf("STREAMCHAOS_SCRIPT: %w", err))
	}
	opts, err := clientOptions(p)
	if err != nil {
		return fail(0, err)
	}
	client := anthropic.NewClient(opts...)
	ctx := context.Background()
	var messages []anthropic.MessageParam
	var pendingToolResults []anthropic.ContentBlockParamUnion
	for index, turn := range p.Turns {
		if turn.IdleBefore != nil {
			idle, err := strconv.ParseFloat(string(*turn.IdleBefore), 64)
			if err != nil {
				return fail(index, fmt.Errorf("idle_before_s: %w", err))
			}
			time.Sleep(time.Duration(idle * float64(time.Second)))
		}
		parts := 1
		if turn.Parallel != nil {
			n, err := strconv.Atoi(string(*turn.Parallel))
			if err != nil || n < 1 {
				return fail(index, fmt.Errorf("parallel: must be a whole number >= 1, got %q", string(*turn.Parallel)))
			}
			parts = n
		}
		conversations := make([][]anthropic.MessageParam, parts)
		requests := make([]anthropic.MessageNewParams, parts)
		for part := range parts {
			prompt := turn.Prompt
			if parts > 1 {
				prompt = fmt.Sprintf("%s\n(part %d of %d)", turn.Prompt, part+1, parts)
			}
			content := append(append([]anthropic.ContentBlockParamUnion{}, pendingToolResults...), anthropic.NewTextBlock(prompt))
			conversations[part] = append(append([]anthropic.MessageParam{}, messages...), anthropic.NewUserMessage(content...))
			params, err := requestParams(p, turn, conversations[part])
			if err != nil {
				return fail(index, err)
			}
			requests[part] = params
		}
		started := time.Now()
		outcomes := make([]outcome, parts)
		var wg sync.WaitGroup
		for part := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				message, err := perform(ctx, client, requests[part], turn.Stream == nil || *turn.Stream)
				outcomes[part] = outcome{message, err}
			}()
		}
		wg.Wait()
		failed := false
		for part, o := range outcomes {
			var partKey *int
			if parts > 1 {
				partKey = &part
			}
			if o.err != nil {
				failed = true
				printLine(failure{Turn: index, Error: describe(o.err), Part: partKey})
				continue
			}
			line := summarize(index, o.message, started)
			line.Part = partKey
			printLine(line)
		}
		if failed {
			return 1
		}
		message := outcomes[0].message
		messages = append(conversations[0], message.ToParam())
		pendingToolResults = nil
		for _, block := range message.Content {
			if block.Type == "tool_use" {
				// The same block the Python client sends: content as a plain string, no is_error.
				raw, _ := json.Marshal(map[string]string{"type": "tool_result", "tool_use_id": block.ID, "content": "ok"})
				pendingToolResults = append(pendingToolResults, param.Override[anthropic.ContentBlockParamUnion](json.RawMessage(raw)))
			}
		}
	}
	return 0
}

func main() {
	os.Exit(run())
}
