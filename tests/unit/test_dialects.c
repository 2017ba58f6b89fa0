/* Unit tests for the provider dialects (openai.c, anthropic.c, google.c): the request body each
 * builds from goosed's conversation format, URLs and headers, and the parsing of real-format
 * streams (recorded from tests/fakes/fake-provider.mjs, which speaks each API's wire format) fed
 * through sse_reader in pieces of every size: text and thinking reassembled, tool calls with
 * arguments split across events, usage and stop reasons, truncated streams, invalid JSON,
 * in-stream errors, and each provider's error body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/content.h"
#include "core/ids.h"
#include "providers/provider.h"

/* ---- canned streams, recorded from the fake provider ---- */

/* clang-format off */
static const char OPENAI_TEXT[] =
    "data: {\"id\":\"chatcmpl-LmD4gPRD6faXknfmeZlaslwkDckC6\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-LmD4gPRD6faXknfmeZlaslwkDckC6\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"Let me \"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-LmD4gPRD6faXknfmeZlaslwkDckC6\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"think.\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-LmD4gPRD6faXknfmeZlaslwkDckC6\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-LmD4gPRD6faXknfmeZlaslwkDckC6\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-LmD4gPRD6faXknfmeZlaslwkDckC6\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"world\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-LmD4gPRD6faXknfmeZlaslwkDckC6\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-LmD4gPRD6faXknfmeZlaslwkDckC6\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7,\"total_tokens\":19}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char OPENAI_TOOLS[] =
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Let me\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" look.\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"developer__shell\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"com\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"mand\\\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":\\\"ls \"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"-la\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"developer__list_files\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-W31UcQvgzCbEk4GisxHK93fTyUmzi\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":9,\"total_tokens\":29}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char OPENAI_TRUNC[] =
    "data: {\"id\":\"chatcmpl-eNAlQ4INtVGnvnS6BJz7qnIlyAgMc\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-eNAlQ4INtVGnvnS6BJz7qnIlyAgMc\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"one\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-eNAlQ4INtVGnvnS6BJz7qnIlyAgMc\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" two\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n";

static const char OPENAI_GARBAGE[] =
    "data: {\"id\":\"chatcmpl-28stjK5Y0Dl7EEduwbIjFwrK5u5Vh\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-28stjK5Y0Dl7EEduwbIjFwrK5u5Vh\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"one\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-garbage\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"gar\n"
    "\n"
    "data: {\"id\":\"chatcmpl-28stjK5Y0Dl7EEduwbIjFwrK5u5Vh\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" two\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-28stjK5Y0Dl7EEduwbIjFwrK5u5Vh\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" three\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-28stjK5Y0Dl7EEduwbIjFwrK5u5Vh\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-28stjK5Y0Dl7EEduwbIjFwrK5u5Vh\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":3,\"total_tokens\":13}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char OPENAI_INSTREAM[] =
    "data: {\"id\":\"chatcmpl-pXHgYi3I2FYdw7kDIAdpnRUCbAZkw\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-pXHgYi3I2FYdw7kDIAdpnRUCbAZkw\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"error\":{\"message\":\"Overloaded right now\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n"
    "\n";

static const char OPENAI_LENGTH[] =
    "data: {\"id\":\"chatcmpl-eK1dmosHma5ppDoVUH5NDNRaTkFhp\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-eK1dmosHma5ppDoVUH5NDNRaTkFhp\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"cut\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-eK1dmosHma5ppDoVUH5NDNRaTkFhp\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" short\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-eK1dmosHma5ppDoVUH5NDNRaTkFhp\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"length\"}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-eK1dmosHma5ppDoVUH5NDNRaTkFhp\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char OPENAI_BADARGS[] =
    "data: {\"id\":\"chatcmpl-xW5Z65zv32wDAfU1pgWtTnIpscpvr\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-xW5Z65zv32wDAfU1pgWtTnIpscpvr\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"developer__shell\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-xW5Z65zv32wDAfU1pgWtTnIpscpvr\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"com\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-xW5Z65zv32wDAfU1pgWtTnIpscpvr\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"mand\\\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-xW5Z65zv32wDAfU1pgWtTnIpscpvr\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\": \\\"ls\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-xW5Z65zv32wDAfU1pgWtTnIpscpvr\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-xW5Z65zv32wDAfU1pgWtTnIpscpvr\",\"object\":\"chat.completion.chunk\",\"created\":1795282309,\"model\":\"gpt-4o\",\"system_fingerprint\":\"fp_fake\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":3,\"total_tokens\":13}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char ANTHROPIC_TEXT[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_Aq9d62WDYiuFNA86AZ0iYSU4\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\":\"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me \"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"think.\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig_abc\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo \"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"world\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

static const char ANTHROPIC_TOOLS[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_uD34PGhm1LMZJHzW2uCKxQfC\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":20,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\":\"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" look.\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"developer__shell\",\"input\":{}}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"com\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"mand\\\"\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\":\\\"ls \"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"-la\\\"}\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_2\",\"name\":\"developer__list_files\",\"input\":{}}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"}\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":2}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

static const char ANTHROPIC_TRUNC[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_DY2mIvHYL4ie2IWxdp0LCD18\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\":\"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"one\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" two\"}}\n"
    "\n";

static const char ANTHROPIC_GARBAGE[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_X7IQ2VSAYOotlo6MHyTxh9zJ\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\":\"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"one\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"gar\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" two\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" three\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":3}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

static const char ANTHROPIC_INSTREAM[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_rmEWyQsbD5AbAx1oZzVHqaZR\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\":\"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"partial\"}}\n"
    "\n"
    "event: error\n"
    "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded right now\"}}\n"
    "\n";

static const char ANTHROPIC_LENGTH[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_copgCARHWMDcEZHWIbEvJEM8\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\":\"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"cut\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" short\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

static const char ANTHROPIC_BADARGS[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_umCeC24533B0ksIBZWYMJ5Ek\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_9\",\"name\":\"developer__shell\",\"input\":{}}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\":\"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"com\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"mand\\\"\"}}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\": \\\"ls\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":3}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

static const char GOOGLE_TEXT[] =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Let me \",\"thought\":true}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":1,\"totalTokenCount\":13},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"yOsxKrFXEp7YufxBObWcrC\"}\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"think.\",\"thought\":true}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":3,\"totalTokenCount\":15},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"yOsxKrFXEp7YufxBObWcrC\"}\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":4,\"totalTokenCount\":16},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"yOsxKrFXEp7YufxBObWcrC\"}\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo \"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":6,\"totalTokenCount\":18},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"yOsxKrFXEp7YufxBObWcrC\"}\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"world\"}],\"role\":\"model\"},\"index\":0,\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":7,\"totalTokenCount\":19},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"yOsxKrFXEp7YufxBObWcrC\"}\r\n"
    "\r\n";

static const char GOOGLE_TOOLS[] =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Let me\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":20,\"candidatesTokenCount\":3,\"totalTokenCount\":23},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"CiG782YsGirCJPdMwgvXGt\"}\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" look.\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":20,\"candidatesTokenCount\":6,\"totalTokenCount\":26},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"CiG782YsGirCJPdMwgvXGt\"}\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"developer__shell\",\"args\":{\"command\":\"ls -la\"}}},{\"functionCall\":{\"name\":\"developer__list_files\",\"args\":{}}}],\"role\":\"model\"},\"index\":0,\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":20,\"candidatesTokenCount\":9,\"totalTokenCount\":29},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"CiG782YsGirCJPdMwgvXGt\"}\r\n"
    "\r\n";

static const char GOOGLE_TRUNC[] =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"one\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":1,\"totalTokenCount\":11},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"GbxanwEzKFvc5kNPHEzxUX\"}\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" two\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":2,\"totalTokenCount\":12},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"GbxanwEzKFvc5kNPHEzxUX\"}\r\n"
    "\r\n";

static const char GOOGLE_GARBAGE[] =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"one\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":1,\"totalTokenCount\":11},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"jizJE8HbjJc4JMW7HhKygf\"}\r\n"
    "\r\n"
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"gar\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" two\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":2,\"totalTokenCount\":12},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"jizJE8HbjJc4JMW7HhKygf\"}\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" three\"}],\"role\":\"model\"},\"index\":0,\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":3,\"totalTokenCount\":13},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"jizJE8HbjJc4JMW7HhKygf\"}\r\n"
    "\r\n";

static const char GOOGLE_INSTREAM[] =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"partial\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":1,\"totalTokenCount\":11},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"54OvoW6QKBHomURCtNzlUc\"}\r\n"
    "\r\n"
    "data: {\"error\":{\"code\":529,\"message\":\"Overloaded right now\",\"status\":\"INTERNAL\"}}\r\n"
    "\r\n";

static const char GOOGLE_LENGTH[] =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"cut\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":1,\"totalTokenCount\":6},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"YiZ8yYqMoqwKNF4N1VEd7m\"}\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" short\"}],\"role\":\"model\"},\"index\":0,\"finishReason\":\"MAX_TOKENS\"}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":2,\"totalTokenCount\":7},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"YiZ8yYqMoqwKNF4N1VEd7m\"}\r\n"
    "\r\n";

static const char GOOGLE_LF[] =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":2,\"totalTokenCount\":14},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"AdYYGcSgWLzIvQMAuZNZhN\"}\n"
    "\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo \"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":5,\"totalTokenCount\":17},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"AdYYGcSgWLzIvQMAuZNZhN\"}\n"
    "\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"world\"}],\"role\":\"model\"},\"index\":0,\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":7,\"totalTokenCount\":19},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"AdYYGcSgWLzIvQMAuZNZhN\"}\n"
    "\n";

static const char GOOGLE_THINKTOOLS[] =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Plan: list.\",\"thought\":true}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":2,\"totalTokenCount\":12},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"BSVHx6TFVXMj9VSVEAzo85\"}\r\n"
    "\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"developer__shell\",\"args\":{\"command\":\"ls\"}},\"thoughtSignature\":\"sig_g\"}],\"role\":\"model\"},\"index\":0,\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":10,\"candidatesTokenCount\":4,\"totalTokenCount\":14},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"BSVHx6TFVXMj9VSVEAzo85\"}\r\n"
    "\r\n";

static const char OPENAI_ERR429[] =
    "{\"error\":{\"message\":\"slow down please\",\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}";

static const char ANTHROPIC_ERR429[] =
    "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down please\"},\"request_id\":\"req_mEhL0a6QyE9IHSA7EtzDgDbN\"}";

static const char GOOGLE_ERR429[] =
    "{\"error\":{\"code\":429,\"message\":\"slow down please\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"3s\"}]}}";

/* clang-format on */

/* ---- a sink that records what it is given ---- */

typedef struct {
    buf text;
    buf thinking;
    buf order; /* one letter per call: t(ext) k (thinking) s(ignature) c(all) */
    char sig[256];
    json_t *calls; /* [{id, name, arguments|null}] */
} rec;

static void r_text(void *ud, const char *s, size_t n)
{
    rec *r = ud;
    assert_true(n > 0);
    assert_int_equal(buf_append(&r->text, s, n), GD_OK);
    assert_int_equal(buf_puts(&r->order, "t"), GD_OK);
}
static void r_thinking(void *ud, const char *s, size_t n)
{
    rec *r = ud;
    assert_int_equal(buf_append(&r->thinking, s, n), GD_OK);
    assert_int_equal(buf_puts(&r->order, "k"), GD_OK);
}
static void r_signature(void *ud, const char *s)
{
    rec *r = ud;
    snprintf(r->sig, sizeof r->sig, "%s", s);
    assert_int_equal(buf_puts(&r->order, "s"), GD_OK);
}
static void r_tool_call(void *ud, const char *id, const char *name, json_t *args)
{
    rec *r = ud;
    json_t *c = json_pack("{s:s, s:s}", "id", id, "name", name);
    json_object_set(c, "arguments", args ? args : json_null());
    json_array_append_new(r->calls, c);
    assert_int_equal(buf_puts(&r->order, "c"), GD_OK);
}

static void rec_init(rec *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->text, 1 << 20);
    buf_init(&r->thinking, 1 << 20);
    buf_init(&r->order, 1 << 20);
    assert_int_equal(buf_puts(&r->text, ""), GD_OK);
    assert_int_equal(buf_puts(&r->thinking, ""), GD_OK);
    assert_int_equal(buf_puts(&r->order, ""), GD_OK);
    r->calls = json_array();
}

static void rec_free(rec *r)
{
    buf_free(&r->text);
    buf_free(&r->thinking);
    buf_free(&r->order);
    json_decref(r->calls);
}

typedef struct {
    const prov_dialect_ops *d;
    prov_parser *p;
    prov_result *res;
} feed_ctx;

static gd_err on_event(void *ud, const char *event, const char *data)
{
    feed_ctx *f = ud;
    return f->d->parser_event(f->p, event, data, f->res);
}

/* Runs stream through sse_reader and d's parser, `piece` bytes at a time, as client.c does. */
static gd_err run(const prov_dialect_ops *d, const char *stream, size_t piece, rec *r,
                  prov_result *res)
{
    prov_sink sink = {.ud = r,
                      .text = r_text,
                      .thinking = r_thinking,
                      .signature = r_signature,
                      .tool_call = r_tool_call};
    memset(res, 0, sizeof *res);
    feed_ctx f = {.d = d, .p = d->parser_new(&sink), .res = res};
    assert_non_null(f.p);
    sse_reader *sse = sse_reader_new(BUF_CAP_SSE_LINE, on_event, &f); /* as client.c */
    assert_non_null(sse);
    gd_err e = GD_OK;
    size_t len = strlen(stream);
    for (size_t at = 0; at < len && !e; at += piece)
        e = sse_reader_feed(sse, stream + at, len - at < piece ? len - at : piece);
    if (!e) e = sse_reader_end(sse);
    if (!e) e = d->parser_finish(f.p, res);
    sse_reader_free(sse);
    d->parser_free(f.p);
    return e;
}

static const size_t pieces[] = {1, 2, 7, 64, 1 << 20};
#define NPIECES (sizeof pieces / sizeof *pieces)

/* ---- streams: one table row per recorded stream, run at every piece size ---- */

typedef struct {
    const char *name;
    const prov_dialect_ops *d;
    const char *stream;
    bool ok;
    const char *text;     /* the text reassembled */
    const char *thinking; /* the thinking reassembled */
    const char *sig;      /* the last signature, "" when none */
    int ncalls;
    const char *stop;      /* when ok */
    long in, out;          /* when ok */
    const char *error_has; /* when not ok: a substring of res.error */
} stream_case;

#define INCOMPLETE "ended before it was complete"

static const stream_case cases[] = {
    {"openai text", &dialect_openai, OPENAI_TEXT, true, "Hello world", "Let me think.", "", 0,
     "end_turn", 12, 7, NULL},
    {"openai tools", &dialect_openai, OPENAI_TOOLS, true, "Let me look.", "", "", 2, "tool_use", 20,
     9, NULL},
    {"openai length", &dialect_openai, OPENAI_LENGTH, true, "cut short", "", "", 0, "max_tokens", 5,
     2, NULL},
    {"openai truncated", &dialect_openai, OPENAI_TRUNC, false, "one two", "", "", 0, NULL, 0, 0,
     INCOMPLETE},
    {"openai garbage", &dialect_openai, OPENAI_GARBAGE, false, "one", "", "", 0, NULL, 0, 0,
     "not valid JSON"},
    {"openai in-stream error", &dialect_openai, OPENAI_INSTREAM, false, "partial", "", "", 0, NULL,
     0, 0, "Overloaded right now"},
    {"anthropic text", &dialect_anthropic, ANTHROPIC_TEXT, true, "Hello world", "Let me think.",
     "sig_abc", 0, "end_turn", 12, 7, NULL},
    {"anthropic tools", &dialect_anthropic, ANTHROPIC_TOOLS, true, "Let me look.", "", "", 2,
     "tool_use", 20, 9, NULL},
    {"anthropic length", &dialect_anthropic, ANTHROPIC_LENGTH, true, "cut short", "", "", 0,
     "max_tokens", 5, 2, NULL},
    {"anthropic truncated", &dialect_anthropic, ANTHROPIC_TRUNC, false, "one two", "", "", 0, NULL,
     0, 0, INCOMPLETE},
    {"anthropic garbage", &dialect_anthropic, ANTHROPIC_GARBAGE, false, "one", "", "", 0, NULL, 0,
     0, "not valid JSON"},
    {"anthropic in-stream error", &dialect_anthropic, ANTHROPIC_INSTREAM, false, "partial", "", "",
     0, NULL, 0, 0, "Overloaded right now"},
    {"google text", &dialect_google, GOOGLE_TEXT, true, "Hello world", "Let me think.", "", 0,
     "end_turn", 12, 7, NULL},
    {"google text, LF framing", &dialect_google, GOOGLE_LF, true, "Hello world", "", "", 0,
     "end_turn", 12, 7, NULL},
    {"google tools", &dialect_google, GOOGLE_TOOLS, true, "Let me look.", "", "", 2, "tool_use", 20,
     9, NULL},
    {"google thinking and a tool", &dialect_google, GOOGLE_THINKTOOLS, true, "", "Plan: list.",
     "sig_g", 1, "tool_use", 10, 4, NULL},
    {"google length", &dialect_google, GOOGLE_LENGTH, true, "cut short", "", "", 0, "max_tokens", 5,
     2, NULL},
    {"google truncated", &dialect_google, GOOGLE_TRUNC, false, "one two", "", "", 0, NULL, 0, 0,
     INCOMPLETE},
    {"google garbage", &dialect_google, GOOGLE_GARBAGE, false, "one", "", "", 0, NULL, 0, 0,
     "not valid JSON"},
    {"google in-stream error", &dialect_google, GOOGLE_INSTREAM, false, "partial", "", "", 0, NULL,
     0, 0, "Overloaded right now"},
};

static void test_streams(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const stream_case *c = &cases[i];
        for (size_t k = 0; k < NPIECES; k++) {
            rec r;
            prov_result res;
            rec_init(&r);
            gd_err e = run(c->d, c->stream, pieces[k], &r, &res);
            bool as_expected = e == (c->ok ? GD_OK : GD_EINVAL) && !strcmp(r.text.data, c->text) &&
                               !strcmp(r.thinking.data, c->thinking) && !strcmp(r.sig, c->sig) &&
                               (c->ok ? (int)json_array_size(r.calls) == c->ncalls &&
                                            !strcmp(res.stop_reason, c->stop) &&
                                            res.input_tokens == c->in && res.output_tokens == c->out
                                      : strstr(res.error, c->error_has) != NULL);
            if (!as_expected) /* say which case, then let the assertions say what */
                print_error("case \"%s\", %zu-byte pieces: %s: %s\n", c->name, pieces[k],
                            gd_strerror(e), res.error);
            assert_int_equal(e, c->ok ? GD_OK : GD_EINVAL);
            assert_string_equal(r.text.data, c->text);
            assert_string_equal(r.thinking.data, c->thinking);
            assert_string_equal(r.sig, c->sig);
            if (c->ok) {
                assert_int_equal(json_array_size(r.calls), c->ncalls);
                assert_string_equal(res.stop_reason, c->stop);
                assert_int_equal(res.input_tokens, c->in);
                assert_int_equal(res.output_tokens, c->out);
            } else {
                assert_non_null(strstr(res.error, c->error_has));
            }
            rec_free(&r);
        }
    }
}

/* The tool calls of the "tools" recordings: two, in order, arguments reassembled. */
static void check_two_calls(const prov_dialect_ops *d, const char *stream, bool given_ids)
{
    for (size_t k = 0; k < NPIECES; k++) {
        rec r;
        prov_result res;
        rec_init(&r);
        assert_int_equal(run(d, stream, pieces[k], &r, &res), GD_OK);
        json_t *want =
            json_loads("[{\"name\":\"developer__shell\",\"arguments\":{\"command\":"
                       "\"ls -la\"}},{\"name\":\"developer__list_files\",\"arguments\":{}}]",
                       0, NULL);
        json_t *ids = json_array(), *c;
        size_t i;
        json_array_foreach(r.calls, i, c)
        {
            json_array_append(ids, json_object_get(c, "id"));
            json_object_del(c, "id");
        }
        assert_true(json_equal(r.calls, want));
        const char *id0 = json_string_value(json_array_get(ids, 0));
        const char *id1 = json_string_value(json_array_get(ids, 1));
        if (given_ids) {
            assert_string_equal(id0, "call_1");
            assert_string_equal(id1, "call_2");
        } else { /* Gemini sends none: made up, unique */
            assert_true(!strncmp(id0, "call_", 5) && strlen(id0) > 5);
            assert_true(!strncmp(id1, "call_", 5) && strlen(id1) > 5);
            assert_string_not_equal(id0, id1);
        }
        /* text first, then the calls, as they came */
        assert_string_equal(r.order.data, "ttcc");
        json_decref(want);
        json_decref(ids);
        rec_free(&r);
    }
}

static void test_tool_calls_reassembled(void **state)
{
    check_two_calls(&dialect_openai, OPENAI_TOOLS, true);
    check_two_calls(&dialect_anthropic, ANTHROPIC_TOOLS, true);
    check_two_calls(&dialect_google, GOOGLE_TOOLS, false);
}

/* Arguments that are not valid JSON reach the sink as NULL (the agent answers with an error). */
static void test_unparseable_arguments(void **state)
{
    const prov_dialect_ops *ds[] = {&dialect_openai, &dialect_anthropic};
    const char *ss[] = {OPENAI_BADARGS, ANTHROPIC_BADARGS};
    for (int i = 0; i < 2; i++) {
        rec r;
        prov_result res;
        rec_init(&r);
        assert_int_equal(run(ds[i], ss[i], 5, &r, &res), GD_OK);
        assert_int_equal(json_array_size(r.calls), 1);
        json_t *c = json_array_get(r.calls, 0);
        assert_string_equal(json_string_value(json_object_get(c, "id")), "call_9");
        assert_string_equal(json_string_value(json_object_get(c, "name")), "developer__shell");
        assert_true(json_is_null(json_object_get(c, "arguments")));
        assert_string_equal(res.stop_reason, "tool_use");
        rec_free(&r);
    }
}

/* Gemini: the thought signature on a functionCall part reaches the sink before the call, so
 * the agent keeps it with the thinking that precedes the call. */
static void test_google_signature_order(void **state)
{
    rec r;
    prov_result res;
    rec_init(&r);
    assert_int_equal(run(&dialect_google, GOOGLE_THINKTOOLS, 3, &r, &res), GD_OK);
    assert_string_equal(r.order.data, "ksc");
    rec_free(&r);
}

/* Anthropic: the signature is handed on once, when the thinking block ends. */
static void test_anthropic_signature_at_block_stop(void **state)
{
    rec r;
    prov_result res;
    rec_init(&r);
    assert_int_equal(run(&dialect_anthropic, ANTHROPIC_TEXT, 11, &r, &res), GD_OK);
    assert_string_equal(r.order.data, "kksttt");
    rec_free(&r);
}

/* Hand-written streams for the cases the fake does not produce. */
/* clang-format off */
#define AEV(type, json) "event: " type "\ndata: " json "\n\n"
#define A_START AEV("message_start", "{\"type\":\"message_start\",\"message\":{\"usage\":{" \
                    "\"input_tokens\":3,\"cache_read_input_tokens\":4,\"output_tokens\":1}}}")
#define A_END(reason) \
    AEV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"" reason "\"}," \
                         "\"usage\":{\"output_tokens\":6}}") \
    AEV("message_stop", "{\"type\":\"message_stop\"}")

/* an error event without its event: line */
static const char A_ERROR_NO_NAME[] =
    A_START
    "data: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}\n\n";
/* an unknown event, an unknown block kind, then text; stop_sequence */
static const char A_UNKNOWN_THINGS[] =
    A_START
    AEV("future_event", "{\"type\":\"future_event\"}")
    AEV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"xx\"}}")
    AEV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")
    AEV("content_block_start", "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
    AEV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}")
    AEV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}")
    A_END("stop_sequence");
/* a tool_use block whose input is given whole at its start, with no deltas */
static const char A_TOOL_INPUT_AT_START[] =
    A_START
    AEV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"t\",\"input\":{\"a\":1}}}")
    AEV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")
    A_END("tool_use");
/* message_delta but no message_stop */
static const char A_NO_STOP[] =
    A_START
    AEV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}");
/* a tool_use block without a name */
static const char A_TOOL_NO_NAME[] =
    A_START
    AEV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"x\"}}");

#define GEV(json) "data: " json "\r\n\r\n"
/* running usage totals, the last counting; thinking tokens are output */
static const char G_USAGE[] =
    GEV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":1}}")
    GEV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":2,\"thoughtsTokenCount\":5}}")
    GEV("{\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":3,\"thoughtsTokenCount\":5}}");
static const char G_SAFETY_EMPTY[] = GEV("{\"candidates\":[{\"finishReason\":\"SAFETY\",\"index\":0}]}");
static const char G_RECITATION_AFTER_TEXT[] =
    GEV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":\"RECITATION\"}]}");
static const char G_BLOCKED[] = GEV("{\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"}}");
static const char G_ARRAY[] = "data: [{\"candidates\":[]}]\n\n";
static const char G_NO_FINISH[] = GEV("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}");
static const char G_CALL_NO_NAME[] =
    GEV("{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"args\":{}}}]},\"finishReason\":\"STOP\"}]}");
static const char G_BAD_ARGS[] =
    GEV("{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"x\",\"args\":\"oops\"}},{\"functionCall\":{\"name\":\"y\"}}],\"role\":\"model\"},\"finishReason\":\"STOP\"}]}");
/* clang-format on */

static gd_err run1(const prov_dialect_ops *d, const char *stream, rec *r, prov_result *res)
{
    rec_init(r);
    return run(d, stream, 3, r, res);
}

static void test_anthropic_edges(void **state)
{
    rec r;
    prov_result res;
    assert_int_equal(run1(&dialect_anthropic, A_ERROR_NO_NAME, &r, &res), GD_EINVAL);
    assert_string_equal(res.error, "Internal server error");
    rec_free(&r);

    /* Unknown events and block kinds are ignored; stop_sequence ends the turn; cached input
     * tokens count as input. */
    assert_int_equal(run1(&dialect_anthropic, A_UNKNOWN_THINGS, &r, &res), GD_OK);
    assert_string_equal(r.text.data, "hi");
    assert_string_equal(res.stop_reason, "end_turn");
    assert_int_equal(res.input_tokens, 7);
    assert_int_equal(res.output_tokens, 6);
    rec_free(&r);

    assert_int_equal(run1(&dialect_anthropic, A_TOOL_INPUT_AT_START, &r, &res), GD_OK);
    json_t *want =
        json_pack("[{s:s, s:s, s:{s:i}}]", "id", "toolu_1", "name", "t", "arguments", "a", 1);
    assert_true(json_equal(r.calls, want));
    json_decref(want);
    assert_string_equal(res.stop_reason, "tool_use");
    rec_free(&r);

    assert_int_equal(run1(&dialect_anthropic, A_NO_STOP, &r, &res), GD_EINVAL);
    assert_non_null(strstr(res.error, INCOMPLETE));
    rec_free(&r);

    assert_int_equal(run1(&dialect_anthropic, "", &r, &res), GD_EINVAL); /* an empty body */
    assert_non_null(strstr(res.error, INCOMPLETE));
    rec_free(&r);

    assert_int_equal(run1(&dialect_anthropic, "data: [1]\n\n", &r, &res), GD_EINVAL);
    assert_non_null(strstr(res.error, "not a JSON object"));
    rec_free(&r);

    assert_int_equal(run1(&dialect_anthropic, A_TOOL_NO_NAME, &r, &res), GD_EINVAL);
    rec_free(&r);
}

/* OpenAI names tool calls by index: the parser's list grows to the highest one seen (the
 * earlier indices, never named, are calls without a name), up to MAX_TOOL_CALLS (64). */
#define OEV(json) "data: " json "\n\n"
static const char O_CALL_AT_2[] = OEV(
    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":2,\"id\":\"c2\","
    "\"function\":{\"name\":\"t\",\"arguments\":\"{}\"}}]}}]}")
    OEV("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}") "data: "
                                                                                       "[DONE]\n\n";
static const char O_CALLS_0_AND_1[] =
    OEV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"c1\","
        "\"function\":{\"name\":\"b\",\"arguments\":\"{\\\"x\\\":\"}}]}}]}")
        OEV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c0\","
            "\"function\":{\"name\":\"a\",\"arguments\":\"{}\"}}]}}]}")
            OEV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{"
                "\"arguments\":\"1}\"}}]}}]}")
                OEV("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_"
                    "reason\":\"tool_calls\"}]}") "data: [DONE]\n\n";
static const char O_CALL_AT_64[] =
    OEV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":64,\"id\":\"c\","
        "\"function\":{\"name\":\"t\",\"arguments\":\"{}\"}}]}}]}");
static const char O_CALL_AT_63[] =
    OEV("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":63,\"id\":\"c\","
        "\"function\":{\"name\":\"t\",\"arguments\":\"{}\"}}]}}]}") "data: [DONE]\n\n";

static void test_openai_call_indices(void **state)
{
    (void)state;
    rec r;
    prov_result res;
    /* index 2 first: 0 and 1 were never named, which the end reports */
    assert_int_equal(run1(&dialect_openai, O_CALL_AT_2, &r, &res), GD_EINVAL);
    assert_string_equal(res.error, "provider sent a tool call without a name");
    rec_free(&r);

    /* out of order, the arguments of the second coming in two pieces around the first */
    assert_int_equal(run1(&dialect_openai, O_CALLS_0_AND_1, &r, &res), GD_OK);
    json_t *want = json_pack("[{s:s, s:s, s:{}}, {s:s, s:s, s:{s:i}}]", "id", "c0", "name", "a",
                             "arguments", "id", "c1", "name", "b", "arguments", "x", 1);
    assert_true(json_equal(r.calls, want));
    json_decref(want);
    assert_string_equal(res.stop_reason, "tool_use");
    rec_free(&r);

    assert_int_equal(run1(&dialect_openai, O_CALL_AT_64, &r, &res), GD_EINVAL);
    assert_string_equal(res.error, "provider sent a tool call index out of range");
    rec_free(&r);

    /* the highest index there is: 63 unnamed calls before it */
    assert_int_equal(run1(&dialect_openai, O_CALL_AT_63, &r, &res), GD_EINVAL);
    assert_string_equal(res.error, "provider sent a tool call without a name");
    rec_free(&r);
}

static void test_google_edges(void **state)
{
    rec r;
    prov_result res;
    assert_int_equal(run1(&dialect_google, G_USAGE, &r, &res), GD_OK);
    assert_string_equal(r.text.data, "ab");
    assert_int_equal(res.input_tokens, 9);
    assert_int_equal(res.output_tokens, 8);
    assert_string_equal(res.stop_reason, "end_turn");
    rec_free(&r);

    /* A reply stopped for safety with nothing in it is an error, not an empty answer... */
    assert_int_equal(run1(&dialect_google, G_SAFETY_EMPTY, &r, &res), GD_EINVAL);
    assert_non_null(strstr(res.error, "SAFETY"));
    rec_free(&r);
    /* ... but other reasons after some text end the turn. */
    assert_int_equal(run1(&dialect_google, G_RECITATION_AFTER_TEXT, &r, &res), GD_OK);
    assert_string_equal(res.stop_reason, "end_turn");
    rec_free(&r);

    assert_int_equal(run1(&dialect_google, G_BLOCKED, &r, &res), GD_EINVAL);
    assert_non_null(strstr(res.error, "PROHIBITED_CONTENT"));
    rec_free(&r);

    /* The non-SSE form (a JSON array) is refused clearly. */
    assert_int_equal(run1(&dialect_google, G_ARRAY, &r, &res), GD_EINVAL);
    assert_non_null(strstr(res.error, "not a JSON object"));
    rec_free(&r);

    assert_int_equal(run1(&dialect_google, G_NO_FINISH, &r, &res), GD_EINVAL);
    assert_non_null(strstr(res.error, INCOMPLETE));
    rec_free(&r);

    assert_int_equal(run1(&dialect_google, G_CALL_NO_NAME, &r, &res), GD_EINVAL);
    rec_free(&r);

    /* Gemini sends args as JSON, so only a non-object can be wrong: NULL; absent args: {}. */
    assert_int_equal(run1(&dialect_google, G_BAD_ARGS, &r, &res), GD_OK);
    assert_int_equal(json_array_size(r.calls), 2);
    assert_true(json_is_null(json_object_get(json_array_get(r.calls, 0), "arguments")));
    json_t *empty = json_object();
    assert_true(json_equal(json_object_get(json_array_get(r.calls, 1), "arguments"), empty));
    json_decref(empty);
    rec_free(&r);
}

/* ---- error bodies ---- */

static void test_error_bodies(void **state)
{
    prov_result res;
    memset(&res, 0, sizeof res);
    dialect_openai.error_body(OPENAI_ERR429, strlen(OPENAI_ERR429), &res);
    assert_string_equal(res.error, "slow down please");

    memset(&res, 0, sizeof res);
    dialect_anthropic.error_body(ANTHROPIC_ERR429, strlen(ANTHROPIC_ERR429), &res);
    assert_string_equal(res.error, "slow down please");

    memset(&res, 0, sizeof res);
    dialect_google.error_body(GOOGLE_ERR429, strlen(GOOGLE_ERR429), &res);
    assert_string_equal(res.error, "slow down please");
    assert_int_equal(res.retry_after_ms, 3000); /* from the RetryInfo detail */

    /* A Retry-After header already seen wins over the body's delay. */
    memset(&res, 0, sizeof res);
    res.retry_after_ms = 1000;
    dialect_google.error_body(GOOGLE_ERR429, strlen(GOOGLE_ERR429), &res);
    assert_int_equal(res.retry_after_ms, 1000);

    /* Gemini's non-SSE form wraps the error in an array. */
    const char *arr = "[{\"error\":{\"code\":400,\"message\":\"API key not valid.\",\"status\":"
                      "\"INVALID_ARGUMENT\"}}]";
    memset(&res, 0, sizeof res);
    dialect_google.error_body(arr, strlen(arr), &res);
    assert_string_equal(res.error, "API key not valid.");

    /* Not JSON (a proxy's page): the start of the body, as it is. */
    const prov_dialect_ops *ds[] = {&dialect_openai, &dialect_anthropic, &dialect_google};
    for (int i = 0; i < 3; i++) {
        memset(&res, 0, sizeof res);
        ds[i]->error_body("<html>Bad Gateway</html>", 24, &res);
        assert_string_equal(res.error, "<html>Bad Gateway</html>");
        memset(&res, 0, sizeof res);
        ds[i]->error_body("", 0, &res);
        assert_string_equal(res.error, "");
    }
}

/* ---- requests ---- */

static const char *CONVERSATION =
    "["
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"List the files.\"}]},"
    "{\"role\":\"assistant\",\"content\":["
    "  {\"type\":\"thinking\",\"thinking\":\"I should run ls.\",\"signature\":\"sig_1\"},"
    "  {\"type\":\"text\",\"text\":\"Let me look.\"},"
    "  {\"type\":\"tool_request\",\"id\":\"toolu_1\",\"name\":\"developer__shell\","
    "   \"arguments\":{\"command\":\"ls\"}},"
    "  {\"type\":\"tool_request\",\"id\":\"toolu_2\",\"name\":\"developer__list_files\","
    "   \"arguments\":{}}]},"
    "{\"role\":\"user\",\"content\":["
    "  {\"type\":\"tool_response\",\"id\":\"toolu_1\",\"name\":\"developer__shell\","
    "   \"content\":[{\"type\":\"text\",\"text\":\"a.txt\\nb.txt\"}],\"is_error\":false},"
    "  {\"type\":\"tool_response\",\"id\":\"toolu_2\",\"name\":\"developer__list_files\","
    "   \"content\":[{\"type\":\"text\",\"text\":\"boom\"}],\"is_error\":true}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"And now?\"}]},"
    "{\"role\":\"assistant\",\"content\":["
    "  {\"type\":\"thinking\",\"thinking\":\"unsigned\"},"
    "  {\"type\":\"text\",\"text\":\"Two files.\"}]}"
    "]";

static const char *TOOLS =
    "[{\"name\":\"developer__shell\",\"description\":\"Run a command\",\"input_schema\":{"
    "  \"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\","
    "  \"properties\":{\"command\":{\"type\":\"string\",\"description\":\"the command\"}},"
    "  \"required\":[\"command\"],\"additionalProperties\":false}},"
    " {\"name\":\"developer__list_files\",\"description\":\"List files\",\"input_schema\":{"
    "  \"type\":\"object\",\"properties\":{}}}]";

static provider_cfg cfg_for(const char *name, const char *model)
{
    provider_cfg c;
    memset(&c, 0, sizeof c);
    c.def = provider_find(name);
    assert_non_null(c.def);
    snprintf(c.base, sizeof c.base, "%s", c.def->default_host);
    snprintf(c.path, sizeof c.path, "%s", c.def->default_path);
    snprintf(c.key, sizeof c.key, "k-123");
    snprintf(c.model, sizeof c.model, "%s", model);
    return c;
}

static json_t *parse(const char *s)
{
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    if (!j) fail_msg("bad JSON in the test: %s: %s", err.text, s);
    return j;
}

static json_t *build(const prov_dialect_ops *d, const provider_cfg *c, const char *system,
                     const char *messages, const char *tools)
{
    json_t *m = parse(messages), *t = tools ? parse(tools) : NULL;
    json_t *body = d->build(c, system, m, t);
    assert_non_null(body);
    json_decref(m);
    json_decref(t);
    return body;
}

static void assert_json(json_t *got, const char *want_s)
{
    json_t *want = parse(want_s);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_INDENT(1) | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_INDENT(1) | JSON_SORT_KEYS);
        print_error("got\n%s\n", g);
        print_error("want\n%s\n", w);
        free(g);
        free(w);
        fail();
    }
    json_decref(want);
}

static void test_build_openai(void **state)
{
    provider_cfg c = cfg_for("openai", "gpt-4o");
    json_t *body = build(&dialect_openai, &c, "Be brief.", CONVERSATION, TOOLS);
    assert_json(
        body,
        "{\"model\":\"gpt-4o\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"List the files.\"},"
        "{\"role\":\"assistant\",\"content\":\"Let me look.\",\"tool_calls\":["
        "  {\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":"
        "   \"developer__shell\",\"arguments\":\"{\\\"command\\\":\\\"ls\\\"}\"}},"
        "  {\"id\":\"toolu_2\",\"type\":\"function\",\"function\":{\"name\":"
        "   \"developer__list_files\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"a.txt\\nb.txt\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_2\",\"content\":\"boom\"},"
        "{\"role\":\"user\",\"content\":\"And now?\"},"
        "{\"role\":\"assistant\",\"content\":\"Two files.\"}],"
        "\"tools\":["
        "{\"type\":\"function\",\"function\":{\"name\":\"developer__shell\",\"description\":"
        " \"Run a command\",\"parameters\":{"
        "  \"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\","
        "  \"properties\":{\"command\":{\"type\":\"string\",\"description\":\"the command\"}},"
        "  \"required\":[\"command\"],\"additionalProperties\":false}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"developer__list_files\","
        " \"description\":\"List files\",\"parameters\":{\"type\":\"object\","
        " \"properties\":{}}}}]}");
    json_decref(body);
}

static void test_transient_errors(void **state)
{
    (void)state;
    static const struct {
        const char *err;
        bool transient;
    } errs[] = {
        {"{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}", true},
        {"{\"type\":\"api_error\"}", true},
        {"{\"type\":\"rate_limit_error\"}", true},
        {"{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long\"}", false},
        {"{\"type\":\"server_error\",\"code\":null}", true},
        {"{\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}", true},
        {"{\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\"}", false},
        {"{\"code\":503,\"status\":\"UNAVAILABLE\"}", true},
        {"{\"code\":429}", true},
        {"{\"code\":400,\"status\":\"INVALID_ARGUMENT\"}", false},
        {"{}", false},
    };
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
        json_t *e = json_loads(errs[i].err, 0, NULL);
        assert_non_null(e);
        if (prov_transient_error(e) != errs[i].transient) fail_msg("%s", errs[i].err);
        json_decref(e);
    }
    assert_false(prov_transient_error(NULL));
}

static void test_build_anthropic(void **state)
{
    provider_cfg c = cfg_for("anthropic", "claude-sonnet-4-20250514");
    json_t *body = build(&dialect_anthropic, &c, "Be brief.", CONVERSATION, TOOLS);
    /* Same-role neighbours merged (the two user messages), tool results first in theirs, the
     * signed thinking kept and the unsigned one dropped, the tools as they are. */
    assert_json(
        body,
        "{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":8192,\"system\":\"Be brief.\","
        "\"stream\":true,\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"List the files.\"}]},"
        "{\"role\":\"assistant\",\"content\":["
        "  {\"type\":\"thinking\",\"thinking\":\"I should run ls.\",\"signature\":\"sig_1\"},"
        "  {\"type\":\"text\",\"text\":\"Let me look.\"},"
        "  {\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"developer__shell\","
        "   \"input\":{\"command\":\"ls\"}},"
        "  {\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"developer__list_files\","
        "   \"input\":{}}]},"
        "{\"role\":\"user\",\"content\":["
        "  {\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":["
        "   {\"type\":\"text\",\"text\":\"a.txt\\nb.txt\"}],\"is_error\":false},"
        "  {\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"content\":["
        "   {\"type\":\"text\",\"text\":\"boom\"}],\"is_error\":true},"
        "  {\"type\":\"text\",\"text\":\"And now?\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Two files.\"}]}],"
        "\"tools\":["
        "{\"name\":\"developer__shell\",\"description\":\"Run a command\",\"input_schema\":{"
        "  \"$schema\":\"http://json-schema.org/draft-07/schema#\",\"type\":\"object\","
        "  \"properties\":{\"command\":{\"type\":\"string\",\"description\":\"the command\"}},"
        "  \"required\":[\"command\"],\"additionalProperties\":false}},"
        "{\"name\":\"developer__list_files\",\"description\":\"List files\",\"input_schema\":{"
        "  \"type\":\"object\",\"properties\":{}}}]}");
    json_decref(body);

    /* Empty and blank text dropped, a message left empty dropped (and its neighbours merged),
     * text before tool results in one message reordered, an empty tool result without content,
     * no system and no tools when there are none, a tool without a schema given an empty one. */
    body = build(
        &dialect_anthropic, &c, "",
        "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"\"},"
        " {\"type\":\"tool_request\",\"id\":\"t1\",\"name\":\"x\",\"arguments\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"note\"},"
        " {\"type\":\"tool_response\",\"id\":\"t1\",\"name\":\"x\",\"content\":[{\"type\":\"text\","
        "  \"text\":\"\"}]}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\" \\n\"},"
        " {\"type\":\"thinking\",\"thinking\":\"t\",\"signature\":\"\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"more\"}]}]",
        NULL);
    assert_json(body,
                "{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":8192,\"stream\":true,"
                "\"messages\":["
                "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}]},"
                "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\","
                " \"name\":\"x\",\"input\":{}}]},"
                "{\"role\":\"user\",\"content\":["
                " {\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"is_error\":false},"
                " {\"type\":\"text\",\"text\":\"note\"},{\"type\":\"text\",\"text\":\"more\"}]}]}");
    json_decref(body);

    /* Extended thinking: the budget, and max_tokens raised by it. */
    c.thinking_budget = 2048;
    body = build(&dialect_anthropic, &c, NULL, "[]", NULL);
    assert_json(body, "{\"model\":\"claude-sonnet-4-20250514\",\"max_tokens\":10240,"
                      "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048},"
                      "\"stream\":true,\"messages\":[]}");
    json_decref(body);
    c.thinking_budget = 0;

    json_t *t = build(&dialect_anthropic, &c, NULL, "[]", "[{\"name\":\"bare\"}]");
    assert_json(json_object_get(t, "tools"),
                "[{\"name\":\"bare\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}]");
    json_decref(t);
}

static void test_build_google(void **state)
{
    provider_cfg c = cfg_for("google", "gemini-2.5-flash");
    json_t *body = build(&dialect_google, &c, "Be brief.", CONVERSATION, TOOLS);
    /* Thinking dropped but its signature carried on the first function call; the tool
     * responses and the next user text in one user content; the schema cleaned of $schema and
     * additionalProperties; a tool without arguments declared without parameters. */
    assert_json(
        body,
        "{\"systemInstruction\":{\"parts\":[{\"text\":\"Be brief.\"}]},"
        "\"contents\":["
        "{\"role\":\"user\",\"parts\":[{\"text\":\"List the files.\"}]},"
        "{\"role\":\"model\",\"parts\":["
        "  {\"text\":\"Let me look.\"},"
        "  {\"functionCall\":{\"name\":\"developer__shell\",\"args\":{\"command\":\"ls\"}},"
        "   \"thoughtSignature\":\"sig_1\"},"
        "  {\"functionCall\":{\"name\":\"developer__list_files\",\"args\":{}}}]},"
        "{\"role\":\"user\",\"parts\":["
        "  {\"functionResponse\":{\"name\":\"developer__shell\",\"response\":{\"content\":"
        "   \"a.txt\\nb.txt\"}}},"
        "  {\"functionResponse\":{\"name\":\"developer__list_files\",\"response\":{\"content\":"
        "   \"boom\"}}},"
        "  {\"text\":\"And now?\"}]},"
        "{\"role\":\"model\",\"parts\":[{\"text\":\"Two files.\"}]}],"
        "\"tools\":[{\"functionDeclarations\":["
        "{\"name\":\"developer__shell\",\"description\":\"Run a command\",\"parameters\":{"
        "  \"type\":\"object\",\"properties\":{\"command\":{\"type\":\"string\","
        "  \"description\":\"the command\"}},\"required\":[\"command\"]}},"
        "{\"name\":\"developer__list_files\",\"description\":\"List files\"}]}]}");
    json_decref(body);

    /* A tool response without its name gets it from the call; with no system and no tools
     * neither key is sent; a tool_request's own signature goes on its call; Gemini 3 gets the
     * documented stand-in signature on a first call whose signature was lost, Gemini 2 none. */
    const char *conv =
        "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"go\"}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_request\",\"id\":\"c1\","
        " \"name\":\"x\",\"arguments\":{\"a\":1}}, {\"type\":\"tool_request\",\"id\":\"c2\","
        " \"name\":\"y\",\"signature\":\"own_sig\"}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_response\",\"id\":\"c1\","
        " \"content\":[{\"type\":\"text\",\"text\":\"one\"},{\"type\":\"text\",\"text\":\"two\"}]},"
        " {\"type\":\"tool_response\",\"id\":\"c2\",\"name\":\"y\",\"content\":[]}]}]";
    body = build(&dialect_google, &c, NULL, conv, "[]");
    assert_json(body,
                "{\"contents\":["
                "{\"role\":\"user\",\"parts\":[{\"text\":\"go\"}]},"
                "{\"role\":\"model\",\"parts\":["
                " {\"functionCall\":{\"name\":\"x\",\"args\":{\"a\":1}}},"
                " {\"functionCall\":{\"name\":\"y\",\"args\":{}},"
                "  \"thoughtSignature\":\"own_sig\"}]},"
                "{\"role\":\"user\",\"parts\":["
                " {\"functionResponse\":{\"name\":\"x\",\"response\":{\"content\":"
                "  \"one\\ntwo\"}}},"
                " {\"functionResponse\":{\"name\":\"y\",\"response\":{\"content\":\"\"}}}]}]}");
    json_decref(body);
    provider_cfg c3 = cfg_for("google", "gemini-3-pro-preview");
    body = build(&dialect_google, &c3, NULL, conv, NULL);
    json_t *parts = json_object_get(json_array_get(json_object_get(body, "contents"), 1), "parts");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(parts, 0), "thoughtSignature")),
        "skip_thought_signature_validator");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(parts, 1), "thoughtSignature")),
        "own_sig");
    json_decref(body);
}

/* ---- tool results as MCP content items ---- */

/* Three tool calls answered with an image, resources (text, image blob, other blob) and a mix
 * with an item of an unknown type, an image of a type no API takes, and is_error. */
static const char *MCP_CONV =
    "["
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Look.\"}]},"
    "{\"role\":\"assistant\",\"content\":["
    "  {\"type\":\"tool_request\",\"id\":\"c1\",\"name\":\"shot\",\"arguments\":{}},"
    "  {\"type\":\"tool_request\",\"id\":\"c2\",\"name\":\"read\",\"arguments\":{}},"
    "  {\"type\":\"tool_request\",\"id\":\"c3\",\"name\":\"mixed\",\"arguments\":{}}]},"
    "{\"role\":\"user\",\"content\":["
    "  {\"type\":\"tool_response\",\"id\":\"c1\",\"name\":\"shot\",\"content\":["
    "   {\"type\":\"image\",\"data\":\"iVBOR\",\"mimeType\":\"image/png\"}],\"is_error\":false},"
    "  {\"type\":\"tool_response\",\"id\":\"c2\",\"name\":\"read\",\"content\":["
    "   {\"type\":\"resource\",\"resource\":{\"uri\":\"file:///a.txt\",\"mimeType\":\"text/plain\","
    "    \"text\":\"hello\"}},"
    "   {\"type\":\"resource\",\"resource\":{\"uri\":\"file:///b.png\",\"mimeType\":\"image/png\","
    "    \"blob\":\"QkxPQg==\"}},"
    "   {\"type\":\"resource\",\"resource\":{\"uri\":\"file:///c.pdf\","
    "    \"mimeType\":\"application/pdf\",\"blob\":\"JVBERi0=\"}}],\"is_error\":false},"
    "  {\"type\":\"tool_response\",\"id\":\"c3\",\"name\":\"mixed\",\"content\":["
    "   {\"type\":\"text\",\"text\":\"before\"},"
    "   {\"type\":\"image\",\"data\":\"R0lG\",\"mimeType\":\"image/gif\"},"
    "   {\"type\":\"audio\",\"data\":\"AAAA\",\"mimeType\":\"audio/wav\"},"
    "   {\"type\":\"image\",\"data\":\"PHN2Zz4=\",\"mimeType\":\"image/svg+xml\"},"
    "   {\"type\":\"text\",\"text\":\"after\"}],\"is_error\":true},"
    "  {\"type\":\"text\",\"text\":\"What do you see?\"}]}"
    "]";

#define PDF_NOTE                                                                                   \
    "[resource file:///c.pdf (application/pdf): binary content this provider cannot take, left "   \
    "out]"
#define AUDIO_NOTE                                                                                 \
    "[audio (audio/wav, about 3 bytes): this provider cannot take audio in a tool result, left "   \
    "out]"
#define SVG_NOTE "[an image of type image/svg+xml: this provider cannot take it, left out]"

static void test_mcp_openai(void **state)
{
    (void)state;
    provider_cfg c = cfg_for("openai", "gpt-4o");
    json_t *body = build(&dialect_openai, &c, NULL, MCP_CONV, NULL);
    /* The text (an image replaced by a note) in each tool message, all the images in one user
     * message after the last tool message, then the user's text. */
    assert_json(
        json_object_get(body, "messages"),
        "[{\"role\":\"user\",\"content\":\"Look.\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        " {\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"shot\",\"arguments\":\"{}"
        "\"}},"
        " {\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"read\",\"arguments\":\"{}"
        "\"}},"
        " {\"id\":\"c3\",\"type\":\"function\",\"function\":{\"name\":\"mixed\","
        "  \"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\","
        " \"content\":\"[an image: it follows in the next user message]\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":\"resource "
        "file:///a.txt:\\nhello\\n"
        "[an image: it follows in the next user message]\\n" PDF_NOTE "\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c3\",\"content\":\"before\\n"
        "[an image: it follows in the next user message]\\n" AUDIO_NOTE "\\n" SVG_NOTE
        "\\nafter\"},"
        "{\"role\":\"user\",\"content\":["
        " {\"type\":\"text\",\"text\":\"The images returned by the tool call c1:\"},"
        " {\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBOR\"}},"
        " {\"type\":\"text\",\"text\":\"The images returned by the tool call c2:\"},"
        " {\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,QkxPQg==\"}},"
        " {\"type\":\"text\",\"text\":\"The images returned by the tool call c3:\"},"
        " {\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/gif;base64,R0lG\"}}]},"
        "{\"role\":\"user\",\"content\":\"What do you see?\"}]");
    json_decref(body);

    /* Text only: no image message; is_error has no field in this API. */
    body = build(&dialect_openai, &c, NULL,
                 "[{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_request\",\"id\":\"c1\","
                 " \"name\":\"x\",\"arguments\":{}}]},"
                 "{\"role\":\"user\",\"content\":[{\"type\":\"tool_response\",\"id\":\"c1\","
                 " \"name\":\"x\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                 " {\"type\":\"text\",\"text\":\"b\"}],\"is_error\":true}]}]",
                 NULL);
    json_t *msgs = json_object_get(body, "messages");
    assert_int_equal(json_array_size(msgs), 2);
    assert_json(json_array_get(msgs, 1),
                "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"a\\nb\"}");
    json_decref(body);
}

static void test_mcp_anthropic(void **state)
{
    (void)state;
    provider_cfg c = cfg_for("anthropic", "claude-sonnet-4-20250514");
    json_t *body = build(&dialect_anthropic, &c, NULL, MCP_CONV, NULL);
    assert_json(
        json_object_get(body, "messages"),
        "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Look.\"}]},"
        "{\"role\":\"assistant\",\"content\":["
        " {\"type\":\"tool_use\",\"id\":\"c1\",\"name\":\"shot\",\"input\":{}},"
        " {\"type\":\"tool_use\",\"id\":\"c2\",\"name\":\"read\",\"input\":{}},"
        " {\"type\":\"tool_use\",\"id\":\"c3\",\"name\":\"mixed\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":["
        " {\"type\":\"tool_result\",\"tool_use_id\":\"c1\",\"is_error\":false,\"content\":["
        "  {\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
        "   \"data\":\"iVBOR\"}}]},"
        " {\"type\":\"tool_result\",\"tool_use_id\":\"c2\",\"is_error\":false,\"content\":["
        "  {\"type\":\"text\",\"text\":\"resource file:///a.txt:\\nhello\"},"
        "  {\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
        "   \"data\":\"QkxPQg==\"}},"
        "  {\"type\":\"text\",\"text\":\"" PDF_NOTE "\"}]},"
        " {\"type\":\"tool_result\",\"tool_use_id\":\"c3\",\"is_error\":true,\"content\":["
        "  {\"type\":\"text\",\"text\":\"before\"},"
        "  {\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/gif\","
        "   \"data\":\"R0lG\"}},"
        "  {\"type\":\"text\",\"text\":\"" AUDIO_NOTE "\"},"
        "  {\"type\":\"text\",\"text\":\"" SVG_NOTE "\"},"
        "  {\"type\":\"text\",\"text\":\"after\"}]},"
        " {\"type\":\"text\",\"text\":\"What do you see?\"}]}]");
    json_decref(body);
}

static void test_mcp_google(void **state)
{
    (void)state;
    provider_cfg c = cfg_for("google", "gemini-2.5-flash");
    json_t *body = build(&dialect_google, &c, NULL, MCP_CONV, NULL);
    /* The text in each functionResponse, the images as inlineData after all of them (Gemini
     * takes no GIF), then the user's text. */
    assert_json(json_object_get(body, "contents"),
                "[{\"role\":\"user\",\"parts\":[{\"text\":\"Look.\"}]},"
                "{\"role\":\"model\",\"parts\":["
                " {\"functionCall\":{\"name\":\"shot\",\"args\":{}}},"
                " {\"functionCall\":{\"name\":\"read\",\"args\":{}}},"
                " {\"functionCall\":{\"name\":\"mixed\",\"args\":{}}}]},"
                "{\"role\":\"user\",\"parts\":["
                " {\"functionResponse\":{\"name\":\"shot\",\"response\":{\"content\":"
                "  \"[an image: it follows after the function responses]\"}}},"
                " {\"functionResponse\":{\"name\":\"read\",\"response\":{\"content\":"
                "  \"resource file:///a.txt:\\nhello\\n[an image: it follows after the function "
                "responses]\\n" PDF_NOTE "\"}}},"
                " {\"functionResponse\":{\"name\":\"mixed\",\"response\":{\"content\":\"before\\n"
                "[an image of type image/gif: this provider cannot take it, left out]\\n" AUDIO_NOTE
                "\\n" SVG_NOTE "\\nafter\"}}},"
                " {\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"iVBOR\"}},"
                " {\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"QkxPQg==\"}},"
                " {\"text\":\"What do you see?\"}]}]");
    json_decref(body);
}

/* Items missing what they need become notes; nothing is dropped or sent raw. */
static void test_mcp_edges(void **state)
{
    (void)state;
    json_t *items = parse("[{\"type\":\"text\",\"text\":\"\"},"
                          " {\"type\":\"text\"},"
                          " {\"type\":\"image\",\"mimeType\":\"image/png\"},"
                          " {\"type\":\"image\",\"data\":\"AA==\"},"
                          " {\"type\":\"resource\",\"resource\":{\"uri\":\"x://y\"}},"
                          " {\"type\":\"resource\",\"resource\":{\"blob\":\"AA==\"}},"
                          " {\"type\":\"resource\"},"
                          " {\"type\":\"resource_link\",\"uri\":\"file:///z\",\"name\":\"z\"},"
                          " {\"data\":\"raw\"},"
                          " \"a string\"]");
    json_t *parts = content_tool_parts(items, NULL);
    assert_json(parts,
                "[{\"type\":\"text\",\"text\":\"[a text item without text: left out]\"},"
                "{\"type\":\"text\",\"text\":\"[an image without data: left out]\"},"
                "{\"type\":\"text\",\"text\":\"[an image without a mime type: left out]\"},"
                "{\"type\":\"text\",\"text\":\"[resource x://y (no mime type): neither "
                "text nor blob, left out]\"},"
                "{\"type\":\"text\",\"text\":\"[resource (no uri) (no mime type): binary "
                "content this provider cannot take, left out]\"},"
                "{\"type\":\"text\",\"text\":\"[a tool result item of type \\\"resource\\\": "
                "not supported, left out]\"},"
                "{\"type\":\"text\",\"text\":\"[resource link file:///z (z)]\"},"
                "{\"type\":\"text\",\"text\":\"[a tool result item of type \\\"(none)\\\": "
                "not supported, left out]\"},"
                "{\"type\":\"text\",\"text\":\"[a tool result item of type \\\"(none)\\\": "
                "not supported, left out]\"}]");
    json_decref(parts);
    json_decref(items);
    /* Not an array: nothing. */
    parts = content_tool_parts(NULL, NULL);
    assert_int_equal(json_array_size(parts), 0);
    json_decref(parts);
}

/* Every tool call answered, every answer to a call: what a conversation stored by a goosed
 * that stopped mid-tool-call needs before any API takes it. */
static void test_answer_tool_calls(void **state)
{
    (void)state;
    json_t *conv = parse(CONVERSATION);
    json_t *fixed = content_answer_tool_calls(conv);
    assert_true(json_equal(conv, fixed)); /* nothing to change */
    json_decref(fixed);
    json_decref(conv);

#define REQ(id)  "{\"type\":\"tool_request\",\"id\":\"" id "\",\"name\":\"sh\",\"arguments\":{}}"
#define RESP(id) "{\"type\":\"tool_response\",\"id\":\"" id "\",\"name\":\"sh\",\"content\":[]}"
#define GONE(id)                                                                                   \
    "{\"type\":\"tool_response\",\"id\":\"" id "\",\"name\":\"sh\",\"content\":[{\"type\":"        \
    "\"text\",\"text\":\"the tool call did not finish: goosed stopped before its result was "      \
    "stored\"}],\"is_error\":true}"
#define MSG(role, items) "{\"role\":\"" role "\",\"content\":[" items "]}"
#define TEXT(t)          "{\"type\":\"text\",\"text\":\"" t "\"}"
    static const struct {
        const char *in, *want;
    } convs[] = {
        /* stopped mid-call, then a new user message */
        {"[" MSG("user", TEXT("go")) "," MSG("assistant", REQ("a") "," REQ("b")) "," MSG(
             "user", TEXT("again")) "]",
         "[" MSG("user", TEXT("go")) "," MSG("assistant", REQ("a") "," REQ("b")) "," MSG(
             "user", GONE("a") "," GONE("b") "," TEXT("again")) "]"},
        /* the conversation ends with the calls */
        {"[" MSG("user", TEXT("go")) "," MSG("assistant", REQ("a")) "]",
         "[" MSG("user", TEXT("go")) "," MSG("assistant", REQ("a")) "," MSG("user", GONE("a")) "]"},
        /* an assistant message right after the calls */
        {"[" MSG("assistant", REQ("a")) "," MSG("assistant", TEXT("hm")) "]",
         "[" MSG("assistant", REQ("a")) "," MSG("user", GONE("a")) "," MSG("assistant",
                                                                           TEXT("hm")) "]"},
        /* one of two answered */
        {"[" MSG("assistant", REQ("a") "," REQ("b")) "," MSG("user", RESP("b")) "]",
         "[" MSG("assistant", REQ("a") "," REQ("b")) "," MSG("user", GONE("a") "," RESP("b")) "]"},
        /* answers to no call of the message before are left out */
        {"[" MSG("user", RESP("z") "," TEXT("hi")) "," MSG("assistant", REQ("a")) "," MSG(
             "user", RESP("a") "," RESP("q")) "]",
         "[" MSG("user", TEXT("hi")) "," MSG("assistant", REQ("a")) "," MSG("user", RESP("a")) "]"},
        /* a second call and a second answer of one id (stored before ids were made unique) */
        {"[" MSG("assistant", REQ("a") "," REQ("a") "," REQ("b")) "," MSG(
             "user", RESP("a") "," RESP("a") "," RESP("b")) "]",
         "[" MSG("assistant", REQ("a") "," REQ("b")) "," MSG("user", RESP("a") "," RESP("b")) "]"},
    };
    for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
        json_t *in = parse(convs[i].in);
        json_t *before = json_deep_copy(in);
        json_t *got = content_answer_tool_calls(in);
        assert_json(got, convs[i].want);
        assert_true(json_equal(in, before)); /* the input is not changed */
        json_decref(got);
        json_decref(before);
        json_decref(in);
    }
}

/* A stream of n tool calls (each a call with {} arguments, or for Gemini with an argument of
 * argbytes bytes when given) in d's wire format, as a new buffer. */
static char *many_calls(const prov_dialect_ops *d, int n, size_t argbytes)
{
    buf b;
    buf_init(&b, 64u << 20);
    gd_err e = GD_OK;
    if (d == &dialect_anthropic) {
        e = buf_puts(&b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{"
                         "\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
                         "\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":1,"
                         "\"output_tokens\":1}}}\n\n");
        for (int i = 0; i < n && !e; i++)
            e = buf_printf(&b,
                           "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                           "\"index\":%d,\"content_block\":{\"type\":\"tool_use\",\"id\":"
                           "\"toolu_%d\",\"name\":\"t\",\"input\":{}}}\n\n"
                           "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                           "\"index\":%d}\n\n",
                           i, i, i);
        if (!e)
            e = buf_puts(&b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{"
                             "\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":2}}\n\n"
                             "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    } else {
        e = buf_puts(&b, "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[");
        for (int i = 0; i < n && !e; i++) {
            e = buf_printf(&b, "%s{\"functionCall\":{\"name\":\"t\",\"args\":{\"a\":\"",
                           i ? "," : "");
            for (size_t k = 0; k < argbytes && !e; k++)
                e = buf_append(&b, "x", 1);
            if (!e) e = buf_puts(&b, "\"}}}");
        }
        if (!e)
            e = buf_puts(&b, "]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{"
                             "\"promptTokenCount\":1,\"candidatesTokenCount\":1}}\r\n\r\n");
    }
    assert_int_equal(e, GD_OK);
    return buf_detach(&b);
}

/* Every dialect takes at most 64 tool calls from one reply, and arguments of at most 4 MiB. */
static void test_tool_call_caps(void **state)
{
    (void)state;
    const prov_dialect_ops *ds[] = {&dialect_anthropic, &dialect_google};
    for (size_t i = 0; i < 2; i++) {
        for (int n = 64; n <= 65; n++) {
            char *stream = many_calls(ds[i], n, 0);
            rec r;
            rec_init(&r);
            prov_result res;
            gd_err e = run(ds[i], stream, 1 << 20, &r, &res);
            if (n == 64) {
                assert_int_equal(e, GD_OK);
                assert_int_equal(json_array_size(r.calls), 64);
            } else {
                assert_int_not_equal(e, GD_OK);
                assert_non_null(strstr(res.error, "more than 64 tool calls"));
            }
            rec_free(&r);
            free(stream);
        }
    }
    char *stream = many_calls(&dialect_google, 1, (4u << 20) + 1);
    rec r;
    rec_init(&r);
    prov_result res;
    assert_int_not_equal(run(&dialect_google, stream, 1 << 20, &r, &res), GD_OK);
    assert_non_null(strstr(res.error, "tool call arguments larger than 4 MiB"));
    assert_int_equal(json_array_size(r.calls), 0);
    rec_free(&r);
    free(stream);
}

/* Gemini takes a subset of OpenAPI 3.0's schema and refuses unknown keys. */
static void test_google_schema(void **state)
{
    provider_cfg c = cfg_for("google", "gemini-2.5-flash");
    json_t *body =
        build(&dialect_google, &c, NULL, "[]",
              "[{\"name\":\"t\",\"description\":\"d\",\"input_schema\":{"
              "\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
              "\"additionalProperties\":false,\"title\":\"Args\","
              "\"$defs\":{\"Mode\":{\"type\":\"string\",\"enum\":[\"fast\",\"slow\"],"
              "  \"description\":\"how\"}},"
              "\"properties\":{"
              " \"path\":{\"type\":[\"string\",\"null\"],\"format\":\"uri\",\"default\":\".\","
              "  \"minLength\":1,\"pattern\":\"^/\"},"
              " \"when\":{\"type\":\"string\",\"format\":\"date-time\",\"examples\":[\"x\"]},"
              " \"mode\":{\"$ref\":\"#/$defs/Mode\"},"
              " \"count\":{\"anyOf\":[{\"type\":\"integer\",\"minimum\":0,\"maximum\":9},"
              "  {\"type\":\"null\"}],\"title\":\"Count\"},"
              " \"level\":{\"type\":\"integer\",\"enum\":[1,2,3]},"
              " \"kind\":{\"const\":\"file\"},"
              " \"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1,"
              "  \"uniqueItems\":true},"
              " \"pair\":{\"type\":\"array\",\"items\":[{\"type\":\"string\"}]},"
              " \"either\":{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"number\"}]},"
              " \"opts\":{\"type\":\"object\",\"properties\":{},\"additionalProperties\":true}},"
              "\"required\":[\"path\",\"ghost\"]}}]");
    json_t *decl = json_array_get(
        json_object_get(json_array_get(json_object_get(body, "tools"), 0), "functionDeclarations"),
        0);
    assert_json(json_object_get(decl, "parameters"),
                "{\"type\":\"object\",\"description\":\"Args\",\"required\":[\"path\"],"
                "\"properties\":{"
                " \"path\":{\"type\":\"string\",\"nullable\":true,\"default\":\".\"},"
                " \"when\":{\"type\":\"string\",\"format\":\"date-time\"},"
                " \"mode\":{\"type\":\"string\",\"enum\":[\"fast\",\"slow\"],"
                "  \"description\":\"how\"},"
                " \"count\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9,"
                "  \"description\":\"Count\",\"nullable\":true},"
                " \"level\":{\"type\":\"integer\"},"
                " \"kind\":{\"enum\":[\"file\"]},"
                " \"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1},"
                " \"pair\":{\"type\":\"array\"},"
                " \"either\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"number\"}]},"
                " \"opts\":{\"type\":\"object\"}}}");
    json_decref(body);

    /* A $ref cycle is inlined once, then cut. */
    body = build(&dialect_google, &c, NULL, "[]",
                 "[{\"name\":\"t\",\"input_schema\":{\"type\":\"object\",\"$defs\":{\"N\":{"
                 "\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":\"#/$defs/N\"}}}},"
                 "\"properties\":{\"head\":{\"$ref\":\"#/$defs/N\"}}}}]");
    decl = json_array_get(
        json_object_get(json_array_get(json_object_get(body, "tools"), 0), "functionDeclarations"),
        0);
    assert_json(json_object_get(decl, "parameters"),
                "{\"type\":\"object\",\"properties\":{\"head\":{\"type\":\"object\","
                "\"properties\":{\"next\":{}}}}}");
    json_decref(body);

    /* A schema that unfolds exponentially (each level refers twice to the next) is cut at a
     * node budget instead of taking minutes and gigabytes. */
    json_t *defs = json_object();
    for (int i = 0; i < 30; i++) {
        char self[8], next[32];
        snprintf(self, sizeof self, "L%d", i);
        snprintf(next, sizeof next, "#/$defs/L%d", i + 1);
        json_object_set_new(defs, self,
                            json_pack("{s:s, s:{s:{s:s}, s:{s:s}}}", "type", "object", "properties",
                                      "a", "$ref", next, "b", "$ref", next));
    }
    json_t *tools =
        json_pack("[{s:s, s:{s:s, s:o, s:{s:{s:s}}}}]", "name", "t", "input_schema", "type",
                  "object", "$defs", defs, "properties", "root", "$ref", "#/$defs/L0");
    json_t *msgs = json_array();
    body = dialect_google.build(&c, NULL, msgs, tools);
    assert_non_null(body);
    char *dump = json_dumps(body, JSON_COMPACT);
    assert_true(strlen(dump) < 200000);
    free(dump);
    json_decref(body);
    json_decref(msgs);
    json_decref(tools);
}

/* ---- URLs and headers ---- */

/* The headers a dialect appends, as "Name: value\r\n" lines, in h (reset first). */
static buf *headers_of(const prov_dialect_ops *d, const provider_cfg *c, buf *h)
{
    buf_reset(h);
    assert_int_equal(d->headers(c, h), GD_OK);
    return h;
}

static bool has_header(buf *h, const char *want)
{
    size_t n = strlen(want);
    for (size_t i = 0; i + n + 2 <= h->len;) {
        const char *e = strstr(h->data + i, "\r\n");
        if (!e) break;
        if ((size_t)(e - (h->data + i)) == n && !memcmp(h->data + i, want, n)) return true;
        i = (size_t)(e - h->data) + 2;
    }
    return false;
}

static int nheaders(buf *h)
{
    int n = 0;
    for (const char *p = h->data; p && (p = strstr(p, "\r\n")); p += 2)
        n++;
    return n;
}

static void test_url_and_headers(void **state)
{
    char url[1400];
    provider_cfg c = cfg_for("openai", "gpt-4o");
    dialect_openai.url(&c, url, sizeof url);
    assert_string_equal(url, "https://api.openai.com/v1/chat/completions");
    buf hb;
    buf_init(&hb, 4096);
    buf *h = headers_of(&dialect_openai, &c, &hb);
    assert_true(has_header(h, "Authorization: Bearer k-123"));

    c = cfg_for("anthropic", "claude-sonnet-4-20250514");
    dialect_anthropic.url(&c, url, sizeof url);
    assert_string_equal(url, "https://api.anthropic.com/v1/messages");
    h = headers_of(&dialect_anthropic, &c, &hb);
    assert_true(has_header(h, "x-api-key: k-123"));
    assert_true(has_header(h, "anthropic-version: 2023-06-01"));
    assert_int_equal(nheaders(h), 2);
    c.key[0] = '\0'; /* no key: only the version */
    h = headers_of(&dialect_anthropic, &c, &hb);
    assert_true(has_header(h, "anthropic-version: 2023-06-01"));
    assert_int_equal(nheaders(h), 1);

    c = cfg_for("google", "gemini-2.5-flash");
    dialect_google.url(&c, url, sizeof url);
    assert_string_equal(url, "https://generativelanguage.googleapis.com/v1beta/models/"
                             "gemini-2.5-flash:streamGenerateContent?alt=sse");
    snprintf(c.model, sizeof c.model, "models/gemini-2.5-pro"); /* the API's own spelling */
    dialect_google.url(&c, url, sizeof url);
    assert_string_equal(url, "https://generativelanguage.googleapis.com/v1beta/models/"
                             "gemini-2.5-pro:streamGenerateContent?alt=sse");
    h = headers_of(&dialect_google, &c, &hb);
    assert_true(has_header(h, "x-goog-api-key: k-123"));
    assert_int_equal(nheaders(h), 1);
    buf_free(&hb);
    /* the key never goes into the URL (URLs are logged) */
    assert_null(strstr(url, "k-123"));
}

/* prov_body_text: what build writes, for every dialect, with the tools written once per list
 * and dialect and spliced in. */
static void test_body_text_splices_the_tools(void **state)
{
    (void)state;
    const prov_dialect_ops *ds[] = {&dialect_openai, &dialect_anthropic, &dialect_google};
    const char *models[] = {"gpt-4o", "claude-sonnet-4-20250514", "gemini-2.0-flash"};
    const char *names[] = {"openai", "anthropic", "google"};
    prov_tools_text tt = {0};
    for (int k = 0; k < 3; k++) {
        provider_cfg c = cfg_for(names[k], models[k]);
        json_t *m = parse(CONVERSATION), *t = parse(TOOLS), *none = parse("[]");
        for (int round = 0; round < 2; round++) {
            char *text = prov_body_text(ds[k], &c, "Be brief.", m, t, &tt);
            assert_non_null(text);
            json_t *got = parse(text), *want = ds[k]->build(&c, "Be brief.", m, t);
            char *want_text = json_dumps(want, JSON_COMPACT);
            assert_string_equal(text, want_text); /* byte for byte, not only the same JSON */
            assert_true(json_equal(got, want));
            assert_ptr_equal(tt.d, ds[k]);
            assert_ptr_equal(tt.tools, t);
            const char *kept = tt.text;
            free(text);
            free(want_text);
            json_decref(got);
            json_decref(want);
            text = prov_body_text(ds[k], &c, "Be brief.", m, t, &tt);
            assert_ptr_equal(tt.text, kept); /* the same list: its text was not written again */
            free(text);
        }
        char *text = prov_body_text(ds[k], &c, NULL, m, none, &tt);
        json_t *got = parse(text);
        assert_null(json_object_get(got, "tools"));
        json_decref(got);
        free(text);
        json_decref(m);
        json_decref(t);
        json_decref(none);
    }
    prov_tools_text_clear(&tt);
}

int main(void)
{
    ids_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_tool_calls_reassembled),
        cmocka_unit_test(test_unparseable_arguments),
        cmocka_unit_test(test_google_signature_order),
        cmocka_unit_test(test_anthropic_signature_at_block_stop),
        cmocka_unit_test(test_anthropic_edges),
        cmocka_unit_test(test_openai_call_indices),
        cmocka_unit_test(test_google_edges),
        cmocka_unit_test(test_error_bodies),
        cmocka_unit_test(test_build_openai),
        cmocka_unit_test(test_build_anthropic),
        cmocka_unit_test(test_build_google),
        cmocka_unit_test(test_google_schema),
        cmocka_unit_test(test_mcp_openai),
        cmocka_unit_test(test_mcp_anthropic),
        cmocka_unit_test(test_mcp_google),
        cmocka_unit_test(test_mcp_edges),
        cmocka_unit_test(test_answer_tool_calls),
        cmocka_unit_test(test_tool_call_caps),
        cmocka_unit_test(test_url_and_headers),
        cmocka_unit_test(test_transient_errors),
        cmocka_unit_test(test_body_text_splices_the_tools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
