// Render an Ollama TEMPLATE the way Ollama does (Go text/template over .Messages) for the Modelfile tests.
// Input (stdin): {"template": "...", "messages": [{"role": "...", "content": "..."}]}. Output: the rendered prompt.
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Input struct {
	Template string    `json:"template"`
	Messages []Message `json:"messages"`
}

func main() {
	var input Input
	if err := json.NewDecoder(os.Stdin).Decode(&input); err != nil {
		panic(err)
	}
	tmpl := template.Must(template.New("ollama").Parse(input.Template))
	data := map[string]any{"Messages": input.Messages}
	if err := tmpl.Execute(os.Stdout, data); err != nil {
		panic(err)
	}
}
