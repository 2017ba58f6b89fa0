/* The providers goosed knows. Adding an OpenAI-compatible provider is one row. Environment
 * variable names are the ones the real Goose uses. */
#include <string.h>

#include "providers/provider.h"

const provider_def provider_defs[] = {
    {"openai", DIALECT_OPENAI, "OPENAI_HOST", "https://api.openai.com", "OPENAI_BASE_PATH",
     "v1/chat/completions", "OPENAI_API_KEY", "gpt-4o", "OpenAI Chat Completions"},
    {"anthropic", DIALECT_ANTHROPIC, "ANTHROPIC_HOST", "https://api.anthropic.com", NULL,
     "v1/messages", "ANTHROPIC_API_KEY", "claude-sonnet-4-20250514", "Anthropic Messages"},
    {"google", DIALECT_GOOGLE, "GOOGLE_HOST", "https://generativelanguage.googleapis.com", NULL,
     "v1beta/models", "GOOGLE_API_KEY", "gemini-2.5-flash", "Google Gemini"},
    {"ollama", DIALECT_OPENAI, "OLLAMA_HOST", "http://localhost:11434", NULL, "v1/chat/completions",
     NULL, "qwen2.5", "Ollama (local models)"},
    {"openrouter", DIALECT_OPENAI, "OPENROUTER_HOST", "https://openrouter.ai", NULL,
     "api/v1/chat/completions", "OPENROUTER_API_KEY", "anthropic/claude-sonnet-4", "OpenRouter"},
    {"groq", DIALECT_OPENAI, "GROQ_HOST", "https://api.groq.com", NULL,
     "openai/v1/chat/completions", "GROQ_API_KEY", "llama-3.3-70b-versatile", "Groq"},
    {"deepseek", DIALECT_OPENAI, "DEEPSEEK_HOST", "https://api.deepseek.com", NULL,
     "v1/chat/completions", "DEEPSEEK_API_KEY", "deepseek-chat", "DeepSeek"},
    {"mistral", DIALECT_OPENAI, "MISTRAL_HOST", "https://api.mistral.ai", NULL,
     "v1/chat/completions", "MISTRAL_API_KEY", "mistral-large-latest", "Mistral"},
    {"xai", DIALECT_OPENAI, "XAI_HOST", "https://api.x.ai", NULL, "v1/chat/completions",
     "XAI_API_KEY", "grok-3", "xAI"},
    {"together", DIALECT_OPENAI, "TOGETHER_HOST", "https://api.together.xyz", NULL,
     "v1/chat/completions", "TOGETHER_API_KEY", "meta-llama/Llama-3.3-70B-Instruct-Turbo",
     "Together AI"},
    {"lmstudio", DIALECT_OPENAI, "LMSTUDIO_HOST", "http://localhost:1234", NULL,
     "v1/chat/completions", NULL, "local-model", "LM Studio (local models)"},
    {"litellm", DIALECT_OPENAI, "LITELLM_HOST", "http://localhost:4000", NULL,
     "v1/chat/completions", "LITELLM_API_KEY", "gpt-4o", "LiteLLM proxy"},
    /* Azure: base is the resource endpoint; the deployment and api-version make the path (openai.c)
     */
    {"azure_openai", DIALECT_OPENAI, "AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com",
     NULL, "openai/deployments", "AZURE_OPENAI_API_KEY", "gpt-4o", "Azure OpenAI"},
    {"custom", DIALECT_OPENAI, "CUSTOM_HOST", "http://localhost:8000", "CUSTOM_BASE_PATH",
     "v1/chat/completions", "CUSTOM_API_KEY", "default", "Any OpenAI-compatible endpoint"},
};
const size_t provider_ndefs = sizeof provider_defs / sizeof *provider_defs;

const provider_def *provider_find(const char *name)
{
    for (size_t i = 0; i < provider_ndefs; i++)
        if (!strcmp(provider_defs[i].name, name)) return &provider_defs[i];
    return NULL;
}

const prov_dialect_ops *dialect_of(const provider_def *def)
{
    switch (def->dialect) {
    case DIALECT_OPENAI:
        return &dialect_openai;
    case DIALECT_ANTHROPIC:
        return &dialect_anthropic;
    case DIALECT_GOOGLE:
        return &dialect_google;
    }
    return &dialect_openai;
}
