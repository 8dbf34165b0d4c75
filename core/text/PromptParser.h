#pragma once

// webui's prompt handling before the text encoder, reproduced exactly: emphasis parsing
// (modules/prompt_parser.py `parse_prompt_attention`: "(word:1.2)", "(word)" x1.1,
// "[word]" /1.1, "\(" escapes, BREAK) and chunking (modules/sd_hijack_clip.py `tokenize_line`:
// chunks of 75 tokens framed by start and end tokens, the comma backtrack, per-token weights).
// Prompt editing, alternation and AND are resolved into plain texts before this point.

#include "core/text/ClipTokenizer.h"

#include <QString>

#include <vector>

namespace studio {

class ClipTokenizer;

// A piece of a parsed prompt and its emphasis weight, or a BREAK marker.
struct PromptFragment
{
    QString text;
    double weight = 1.0;

    // webui's test: the text "BREAK" with weight exactly -1. A BREAK inside brackets has its
    // weight multiplied too, so webui (and this code) then tokenizes it as the word "BREAK".
    bool isBreak() const { return weight == -1.0 && text == QLatin1String("BREAK"); }
};

// parse_prompt_attention: fragments with the weights Python computes (products of doubles,
// innermost bracket first). Unbalanced openers apply to the end of the prompt; unmatched
// closers and ":N)" outside parentheses stay text; adjacent fragments of equal weight merge; an
// empty prompt gives one empty fragment. Throws studio::Error where Python's float() would
// fail ("(word:1.2.3)").
std::vector<PromptFragment> parsePromptAttention(const QString& prompt);

// One encoder input: ClipTokenizer::kContextLength ids (start, 75 tokens or end-token padding,
// end) and their emphasis multipliers (1.0 at start, end and padding).
struct PromptChunk
{
    std::vector<int> tokens;
    std::vector<double> weights;
};

// The ids that open and close every chunk: CLIP's, or the last two of a smaller vocabulary.
struct ChunkEnds
{
    int start = ClipTokenizer::kStartOfText;
    int end = ClipTokenizer::kEndOfText;
};

ChunkEnds chunkEndsOf(const ClipTokenizer& tokenizer);

struct TokenizedPrompt
{
    std::vector<PromptChunk> chunks;
    // webui's count shown as "N/75": 75 per closed chunk plus the tokens of the last one.
    int tokenCount = 0;
};

struct PromptChunkingOptions
{
    // false: webui's emphasis "None"; brackets and BREAK are plain text, every weight 1.0.
    bool parseEmphasis = true;
    // webui's comma_padding_backtrack: when a chunk fills up and its last comma is at most this
    // many tokens back, the tokens after the comma move to the next chunk. 0 disables it.
    int commaPaddingBacktrack = 20;
};

constexpr int kPromptChunkTokens = 75;

// tokenize_line for one prompt (without textual-inversion embeddings). The tokenizer's HTML
// setting decides whether entities are unescaped (off for webui's SD1, on for SD2).
TokenizedPrompt tokenizePrompt(const ClipTokenizer& tokenizer, const QString& prompt,
                               const PromptChunkingOptions& options = {});

// The chunking step alone: fragments and their BPE ids (one list per fragment, BREAK markers
// included and ignored), `commaToken` the id of ",</w>".
TokenizedPrompt chunkFragments(const std::vector<PromptFragment>& fragments,
                               const std::vector<std::vector<int>>& fragmentTokens, int commaToken,
                               int commaPaddingBacktrack, const ChunkEnds& ends = {});

// [start] + 76 x [end], weights 1: what a prompt of a batch gets for chunks it does not have.
PromptChunk emptyPromptChunk(const ChunkEnds& ends = {});

// Gives every prompt as many chunks as the longest one has, appending empty chunks (webui's
// batch rule: chunk c of every prompt is encoded as one batch).
void padToCommonChunkCount(std::vector<TokenizedPrompt>& prompts, const ChunkEnds& ends = {});

// SD2 (open_clip pads with 0, not the end token): every id after the first end token becomes 0.
void zeroPadAfterEnd(PromptChunk& chunk, const ChunkEnds& ends = {});

} // namespace studio
