#include "core/text/ClipTextEncoder.h"

#include "core/Error.h"
#include "core/Logging.h"
#include "core/io/TensorSource.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <cmath>
#include <limits>
#include <memory>
#include <tuple>

namespace studio {

namespace {

constexpr double kLayerNormEps = 1e-5;
constexpr double kQuickGeluScale = 1.702;
constexpr int kMlpRatio = 4;
constexpr int kDefaultHeadDim = 64; // full-size CLIP/OpenCLIP text towers: heads = width / 64

// The two layouts differ only in names and in how q/k/v are stored; these are the key
// segments of one block.
struct BlockNames
{
    const char* norm1;
    const char* attention;
    const char* norm2;
    const char* fcIn;
    const char* fcOut;
};

const BlockNames& blockNamesOf(ClipTextLayout layout)
{
    static const BlockNames kHuggingFace{"layer_norm1", "self_attn", "layer_norm2", "fc1", "fc2"};
    static const BlockNames kOpenClip{"ln_1", "attn", "ln_2", "c_fc", "c_proj"};
    return layout == ClipTextLayout::Sd1HuggingFace ? kHuggingFace : kOpenClip;
}

torch::nn::LayerNorm makeLayerNorm(int width)
{
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(kLayerNormEps));
}

QString shapeText(at::IntArrayRef shape)
{
    return QString::fromStdString(c10::str(shape));
}

// Multi-head self-attention. Hugging Face keeps q, k and v as three Linears; OpenCLIP
// (nn.MultiheadAttention) packs them as the row blocks q, k, v of one in_proj. Same math.
class ClipAttentionImpl : public torch::nn::Module
{
public:
    explicit ClipAttentionImpl(const ClipTextConfig& config)
        : m_heads(config.heads), m_packed(config.layout == ClipTextLayout::Sd2OpenClip)
    {
        const int width = config.width;
        if (m_packed) {
            m_inProjWeight =
                register_parameter("in_proj_weight", torch::empty({kQkv * width, width}));
            torch::nn::init::xavier_uniform_(m_inProjWeight);
            m_inProjBias = register_parameter("in_proj_bias", torch::zeros({kQkv * width}));
        } else {
            m_queryProj = register_module("q_proj", torch::nn::Linear(width, width));
            m_keyProj = register_module("k_proj", torch::nn::Linear(width, width));
            m_valueProj = register_module("v_proj", torch::nn::Linear(width, width));
        }
        m_outProj = register_module("out_proj", torch::nn::Linear(width, width));
    }

    /// hidden [B, T, W], mask [T, T] additive (0 / -inf) -> [B, T, W]
    torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask)
    {
        const int64_t batch = hidden.size(0);
        const int64_t tokens = hidden.size(1);
        const int64_t width = hidden.size(2);
        const int64_t headDim = width / m_heads;
        auto splitHeads = [&](const torch::Tensor& x) {
            return x.reshape({batch, tokens, m_heads, headDim}).transpose(1, 2);
        };

        torch::Tensor query;
        torch::Tensor key;
        torch::Tensor value;
        std::tie(query, key, value) = project(hidden);

        // Both originals scale q (bias included) before the product.
        const double scale = 1.0 / std::sqrt(static_cast<double>(headDim));
        const torch::Tensor logits =
            torch::matmul(splitHeads(query * scale), splitHeads(key).transpose(-2, -1)) + mask;
        const torch::Tensor weights = torch::softmax(logits, /*dim=*/-1);

        const torch::Tensor merged = torch::matmul(weights, splitHeads(value))
                                         .transpose(1, 2)
                                         .reshape({batch, tokens, width});
        return m_outProj(merged);
    }

private:
    static constexpr int kQkv = 3;

    std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> project(const torch::Tensor& hidden)
    {
        if (m_packed) {
            const auto qkv =
                torch::linear(hidden, m_inProjWeight, m_inProjBias).chunk(kQkv, /*dim=*/-1);
            return {qkv[0], qkv[1], qkv[2]};
        }
        return {m_queryProj(hidden), m_keyProj(hidden), m_valueProj(hidden)};
    }

    int64_t m_heads;
    bool m_packed;
    torch::Tensor m_inProjWeight;
    torch::Tensor m_inProjBias;
    torch::nn::Linear m_queryProj{nullptr};
    torch::nn::Linear m_keyProj{nullptr};
    torch::nn::Linear m_valueProj{nullptr};
    torch::nn::Linear m_outProj{nullptr};
};

TORCH_MODULE(ClipAttention);

class ClipMlpImpl : public torch::nn::Module
{
public:
    explicit ClipMlpImpl(const ClipTextConfig& config) : m_activation(config.activation)
    {
        const BlockNames& names = blockNamesOf(config.layout);
        const int hiddenWidth = kMlpRatio * config.width;
        m_fcIn = register_module(names.fcIn, torch::nn::Linear(config.width, hiddenWidth));
        m_fcOut = register_module(names.fcOut, torch::nn::Linear(hiddenWidth, config.width));
    }

    /// hidden [..., W] -> [..., W]
    torch::Tensor forward(const torch::Tensor& hidden) { return m_fcOut(activate(m_fcIn(hidden))); }

private:
    torch::Tensor activate(const torch::Tensor& x) const
    {
        if (m_activation == ClipTextActivation::QuickGelu) {
            return x * torch::sigmoid(kQuickGeluScale * x);
        }
        return torch::gelu(x); // exact erf form, torch's default
    }

    ClipTextActivation m_activation;
    torch::nn::Linear m_fcIn{nullptr};
    torch::nn::Linear m_fcOut{nullptr};
};

TORCH_MODULE(ClipMlp);

// One pre-LayerNorm residual block.
class ClipBlockImpl : public torch::nn::Module
{
public:
    explicit ClipBlockImpl(const ClipTextConfig& config)
    {
        const BlockNames& names = blockNamesOf(config.layout);
        m_norm1 = register_module(names.norm1, makeLayerNorm(config.width));
        m_attention = register_module(names.attention, ClipAttention(config));
        m_norm2 = register_module(names.norm2, makeLayerNorm(config.width));
        m_mlp = register_module("mlp", ClipMlp(config));
    }

    /// hidden [B, T, W], mask [T, T] -> [B, T, W]
    torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& mask)
    {
        const torch::Tensor attended = hidden + m_attention(m_norm1(hidden), mask);
        return attended + m_mlp(m_norm2(attended));
    }

private:
    torch::nn::LayerNorm m_norm1{nullptr};
    ClipAttention m_attention{nullptr};
    torch::nn::LayerNorm m_norm2{nullptr};
    ClipMlp m_mlp{nullptr};
};

TORCH_MODULE(ClipBlock);

// Token i sees tokens 0..i: 0 on and below the diagonal, -inf above.
torch::Tensor causalMask(int64_t tokens, const torch::TensorOptions& options)
{
    return torch::full({tokens, tokens}, -std::numeric_limits<float>::infinity(), options)
        .triu(/*diagonal=*/1);
}

void checkInputIds(const torch::Tensor& ids, const ClipTextConfig& config)
{
    if (!ids.defined() || ids.dim() != 2 || ids.size(1) < 1 || ids.size(1) > config.contextLength) {
        throw Error(QStringLiteral("the text encoder needs token ids of shape [batch, 1..%1], "
                                   "got %2")
                        .arg(config.contextLength)
                        .arg(ids.defined() ? shapeText(ids.sizes()) : QStringLiteral("none")));
    }
    if (!at::isIntegralType(ids.scalar_type(), /*includeBool=*/false)) {
        throw Error(QStringLiteral("the text encoder needs integer token ids, got %1")
                        .arg(QString::fromLatin1(c10::toString(ids.scalar_type()))));
    }
    if (ids.numel() == 0) {
        return;
    }

    const int64_t lowest = ids.min().item<int64_t>();
    const int64_t highest = ids.max().item<int64_t>();
    if (lowest < 0 || highest >= config.vocabSize) {
        throw Error(QStringLiteral("token id %1 is outside the text encoder's vocabulary of %2")
                        .arg(lowest < 0 ? lowest : highest)
                        .arg(config.vocabSize));
    }
}

// Where each layout keeps the tensors that detection reads, relative to its prefix.
struct LayoutKeys
{
    const char* prefix;
    ClipTextLayout layout;
    const char* tokenEmbedding;
    const char* positionEmbedding;
    const char* blocks;
};

constexpr char kSd1TokenKey[] = "embeddings.token_embedding.weight";
constexpr char kSd1PositionKey[] = "embeddings.position_embedding.weight";
constexpr char kSd1BlocksKey[] = "encoder.layers.";

const LayoutKeys kKnownLayouts[] = {
    {kSd1TextPrefix, ClipTextLayout::Sd1HuggingFace, kSd1TokenKey, kSd1PositionKey, kSd1BlocksKey},
    // Some early SD1 files lack the `text_model.` level; everything below it is the same.
    {"cond_stage_model.transformer.", ClipTextLayout::Sd1HuggingFace, kSd1TokenKey, kSd1PositionKey,
     kSd1BlocksKey},
    {kSd2TextPrefix, ClipTextLayout::Sd2OpenClip, "token_embedding.weight", "positional_embedding",
     "transformer.resblocks."},
};

// One more than the highest block index under `blocksPrefix`; a gap is reported by the loader,
// which then misses that block's keys.
int countBlocks(const io::TensorSource& source, const QString& blocksPrefix)
{
    int count = 0;
    for (const QString& name : source.names()) {
        if (!name.startsWith(blocksPrefix)) {
            continue;
        }
        const QString index = name.mid(blocksPrefix.size()).section(QLatin1Char('.'), 0, 0);
        bool isNumber = false;
        const int value = index.toInt(&isNumber);
        if (isNumber && value >= 0) {
            count = std::max(count, value + 1);
        }
    }
    return count;
}

std::vector<int64_t> matrixShape(const io::TensorSource& source, const QString& key)
{
    if (!source.contains(key)) {
        throw Error(QStringLiteral("%1 has no tensor '%2', which the text encoder needs")
                        .arg(source.sourceName(), key));
    }
    std::vector<int64_t> shape = source.shape(key);
    if (shape.size() != 2 || shape[0] < 1 || shape[1] < 1) {
        throw Error(QStringLiteral("%1: '%2' has shape %3, expected a matrix")
                        .arg(source.sourceName(), key, shapeText(shape)));
    }
    return shape;
}

int resolveHeads(int width, std::optional<int> heads, const QString& sourceName)
{
    if (heads.has_value()) {
        return *heads;
    }
    if (width % kDefaultHeadDim != 0) {
        throw Error(
            QStringLiteral("%1: the text encoder's head count is not stored in the weights, "
                           "and its width %2 is not a multiple of %3; give the heads "
                           "(cond_stage_config.params.heads in the model's YAML)")
                .arg(sourceName)
                .arg(width)
                .arg(kDefaultHeadDim));
    }
    return width / kDefaultHeadDim;
}

DetectedClipText detectLayout(const io::TensorSource& source, const LayoutKeys& keys,
                              std::optional<int> heads)
{
    const QString prefix = QString::fromLatin1(keys.prefix);
    const std::vector<int64_t> token =
        matrixShape(source, prefix + QLatin1String(keys.tokenEmbedding));
    const std::vector<int64_t> position =
        matrixShape(source, prefix + QLatin1String(keys.positionEmbedding));

    ClipTextConfig config;
    config.layout = keys.layout;
    config.vocabSize = static_cast<int>(token[0]);
    config.width = static_cast<int>(token[1]);
    config.contextLength = static_cast<int>(position[0]);
    config.layers = countBlocks(source, prefix + QLatin1String(keys.blocks));
    config.heads = resolveHeads(config.width, heads, source.sourceName());

    const bool sd1 = keys.layout == ClipTextLayout::Sd1HuggingFace;
    config.activation = sd1 ? ClipTextActivation::QuickGelu : ClipTextActivation::Gelu;
    // SD1 conditions on the last layer, SD2 ("penultimate") on the one before it.
    config.clipSkip = sd1 ? 1 : 2;

    if (position[1] != token[1]) {
        throw Error(QStringLiteral("%1: the position embedding has width %2, the token embedding "
                                   "%3")
                        .arg(source.sourceName())
                        .arg(position[1])
                        .arg(token[1]));
    }
    withContext(source.sourceName(), [&] { config.validate(); });
    return {config, prefix};
}

} // namespace

ClipTextConfig ClipTextConfig::sd1()
{
    return ClipTextConfig{};
}

ClipTextConfig ClipTextConfig::sd2()
{
    ClipTextConfig config;
    config.layout = ClipTextLayout::Sd2OpenClip;
    config.width = 1024;
    config.layers = 24;
    config.heads = 16;
    config.activation = ClipTextActivation::Gelu;
    config.clipSkip = 2;
    return config;
}

void ClipTextConfig::validate() const
{
    auto fail = [](const QString& what) {
        throw Error(QStringLiteral("invalid text encoder config: %1").arg(what));
    };
    if (width < 1 || layers < 1 || vocabSize < 1 || contextLength < 1) {
        fail(QStringLiteral("width %1, layers %2, vocabulary %3 and context length %4 must all "
                            "be positive")
                 .arg(width)
                 .arg(layers)
                 .arg(vocabSize)
                 .arg(contextLength));
    }
    if (heads < 1 || width % heads != 0) {
        fail(QStringLiteral("heads %1 do not divide the width %2").arg(heads).arg(width));
    }
    if (clipSkip < 1 || clipSkip > layers) {
        fail(QStringLiteral("CLIP skip %1 is outside 1..%2 (the layer count)")
                 .arg(clipSkip)
                 .arg(layers));
    }
}

DetectedClipText detectClipTextEncoder(const io::TensorSource& source, std::optional<int> heads)
{
    for (const LayoutKeys& keys : kKnownLayouts) {
        if (source.contains(QLatin1String(keys.prefix) + QLatin1String(keys.tokenEmbedding))) {
            return detectLayout(source, keys, heads);
        }
    }
    throw Error(QStringLiteral("%1 has no SD1 or SD2 text encoder (no '%2%3' or '%4%5')")
                    .arg(source.sourceName(), QLatin1String(kSd1TextPrefix),
                         QLatin1String(kKnownLayouts[0].tokenEmbedding),
                         QLatin1String(kSd2TextPrefix),
                         QLatin1String(kKnownLayouts[2].tokenEmbedding)));
}

ClipTextEncoderImpl::ClipTextEncoderImpl(const ClipTextConfig& config) : m_config(config)
{
    m_config.validate();

    m_tokenEmbedding = torch::nn::Embedding(m_config.vocabSize, m_config.width);
    m_blocks = torch::nn::ModuleList();
    for (int i = 0; i < m_config.layers; ++i) {
        m_blocks->push_back(ClipBlock(m_config));
    }
    m_finalNorm = makeLayerNorm(m_config.width);

    if (m_config.layout == ClipTextLayout::Sd1HuggingFace) {
        buildSd1Layout();
    } else {
        buildSd2Layout();
    }
}

// HF nests the embeddings and the layer list in holder modules (CLIPTextEmbeddings,
// CLIPEncoder); plain Modules reproduce those key levels.
void ClipTextEncoderImpl::buildSd1Layout()
{
    auto embeddings = std::make_shared<torch::nn::Module>();
    embeddings->register_module("token_embedding", m_tokenEmbedding);
    const auto positions = embeddings->register_module(
        "position_embedding", torch::nn::Embedding(m_config.contextLength, m_config.width));
    m_positionEmbedding = positions->weight;
    register_module("embeddings", embeddings);

    auto encoder = std::make_shared<torch::nn::Module>();
    encoder->register_module("layers", m_blocks);
    register_module("encoder", encoder);

    register_module("final_layer_norm", m_finalNorm);
}

void ClipTextEncoderImpl::buildSd2Layout()
{
    register_module("token_embedding", m_tokenEmbedding);
    // open_clip's initialisation; the loader overwrites it.
    m_positionEmbedding = register_parameter(
        "positional_embedding",
        torch::empty({m_config.contextLength, m_config.width}).normal_(0.0, 0.01));

    auto transformer = std::make_shared<torch::nn::Module>();
    transformer->register_module("resblocks", m_blocks);
    register_module("transformer", transformer);

    register_module("ln_final", m_finalNorm);
}

torch::Tensor ClipTextEncoderImpl::embed(const torch::Tensor& inputIds)
{
    checkInputIds(inputIds, m_config);

    // Positions are always 0..T-1: a checkpoint's position_ids buffer is not trusted (spec §6).
    const torch::Tensor ids = inputIds.to(m_tokenEmbedding->weight.device(), torch::kLong);
    const int64_t tokens = ids.size(1);
    return m_tokenEmbedding(ids) + m_positionEmbedding.slice(/*dim=*/0, 0, tokens);
}

torch::Tensor ClipTextEncoderImpl::runBlock(int index, const torch::Tensor& hidden,
                                            const torch::Tensor& mask)
{
    return m_blocks->at<ClipBlockImpl>(static_cast<size_t>(index)).forward(hidden, mask);
}

torch::Tensor ClipTextEncoderImpl::forward(const torch::Tensor& inputIds)
{
    torch::Tensor hidden = embed(inputIds);
    const torch::Tensor mask = causalMask(hidden.size(1), hidden.options());

    // CLIP skip N stops N - 1 blocks before the end; the skipped blocks stay loaded, unused.
    const int blocksToRun = m_config.layers - (m_config.clipSkip - 1);
    for (int i = 0; i < blocksToRun; ++i) {
        hidden = runBlock(i, hidden, mask);
    }

    return finalLayerNorm(hidden);
}

std::vector<torch::Tensor> ClipTextEncoderImpl::hiddenStates(const torch::Tensor& inputIds)
{
    std::vector<torch::Tensor> states{embed(inputIds)};
    const torch::Tensor mask = causalMask(states.front().size(1), states.front().options());

    for (int i = 0; i < m_config.layers; ++i) {
        states.push_back(runBlock(i, states.back(), mask));
    }
    return states;
}

torch::Tensor ClipTextEncoderImpl::finalLayerNorm(const torch::Tensor& hidden)
{
    return m_finalNorm(hidden);
}

ClipTextEncoder loadClipTextEncoder(const io::TensorSource& source, const ClipTextConfig& config,
                                    const QString& prefix)
{
    ClipTextEncoder encoder(config);
    const QStringList unused = withContext(QStringLiteral("loading the text encoder"), [&] {
        return io::loadModuleWeights(*encoder, source, prefix);
    });

    // Keys that real checkpoints carry but conditioning never reads; anything else is unusual.
    static const QStringList kExpectedExtras{QStringLiteral("embeddings.position_ids"),
                                             QStringLiteral("text_projection"),
                                             QStringLiteral("logit_scale")};
    for (const QString& key : unused) {
        if (!kExpectedExtras.contains(key.mid(prefix.size()))) {
            qCDebug(lcIo) << "text encoder: unused key" << key;
        }
    }

    encoder->eval();
    for (torch::Tensor& parameter : encoder->parameters()) {
        parameter.set_requires_grad(false);
    }
    return encoder;
}

} // namespace studio
