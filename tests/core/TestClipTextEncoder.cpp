// The SD1 (Hugging Face layout) and SD2 (OpenCLIP layout) text encoders against the outputs of
// the original openai/CLIP text transformer: hidden states, CLIP skip, the SD2 penultimate
// layer, the tiny end-to-end model's conditioning, config detection and loader errors.

#include "support/TestSupport.h"

#include "core/io/SafeTensors.h"
#include "core/io/TensorSource.h"
#include "core/text/ClipTextEncoder.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <QFile>
#include <QObject>
#include <QRegularExpression>
#include <QTemporaryDir>

#include <algorithm>
#include <functional>
#include <map>

using namespace studio;

Q_DECLARE_METATYPE(studio::ClipTextLayout)
Q_DECLARE_METATYPE(studio::ClipTextActivation)

namespace {

// README "Tolerances": CLIP hidden states and the full/ text context.
constexpr double kAtol = 1e-4;
constexpr double kRtol = 1e-4;
constexpr int kTinyHeads = 4; // clip_text/*.yaml cond_stage_config.params.heads

const QString kSd1Prefix = QString::fromLatin1(kSd1TextPrefix);
const QString kSd2Prefix = QString::fromLatin1(kSd2TextPrefix);

QString clipTextPath(const QString& name)
{
    return test::referencePath(QStringLiteral("clip_text/") + name);
}

at::Tensor ioTensor(const QString& name)
{
    return io::SafeTensorsFile::open(clipTextPath(QStringLiteral("clip_text_io.safetensors")))
        .tensor(name);
}

// Token ids are stored as float32 holding exact integers.
at::Tensor ioInputIds()
{
    return ioTensor(QStringLiteral("input_ids")).to(at::kLong);
}

ClipTextEncoder loadDetected(const QString& path, std::optional<int> heads = kTinyHeads)
{
    const auto source = io::openTensorSource(path);
    const DetectedClipText detected = detectClipTextEncoder(*source, heads);
    return loadClipTextEncoder(*source, detected.config, detected.prefix);
}

// `heads:` under cond_stage_config of an ldm YAML (our extension key, README section 8).
int headsFromYaml(const QString& path)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        return 0;
    }
    static const QRegularExpression kHeads(
        QStringLiteral(R"(cond_stage_config:[\s\S]*?\bheads:\s*(\d+))"));
    return kHeads.match(QString::fromUtf8(file.readAll())).captured(1).toInt();
}

// Names and shapes only, for detecting full-size models without their gigabytes.
class ShapeOnlySource : public io::TensorSource
{
public:
    explicit ShapeOnlySource(std::map<QString, std::vector<int64_t>> shapes)
        : m_shapes(std::move(shapes))
    {
    }

    QString sourceName() const override { return QStringLiteral("'shapes'"); }

    QStringList names() const override
    {
        QStringList result;
        for (const auto& entry : m_shapes) {
            result << entry.first;
        }
        return result;
    }

    bool contains(const QString& name) const override { return m_shapes.count(name) > 0; }

    std::vector<int64_t> shape(const QString& name) const override { return m_shapes.at(name); }

    at::Tensor tensor(const QString& name) const override
    {
        throw Error(QStringLiteral("no data for '%1'").arg(name));
    }

private:
    std::map<QString, std::vector<int64_t>> m_shapes;
};

ShapeOnlySource fullSizeSd1(const QString& prefix)
{
    std::map<QString, std::vector<int64_t>> shapes{
        {prefix + QStringLiteral("embeddings.token_embedding.weight"), {49408, 768}},
        {prefix + QStringLiteral("embeddings.position_embedding.weight"), {77, 768}},
        {prefix + QStringLiteral("embeddings.position_ids"), {1, 77}},
        {prefix + QStringLiteral("final_layer_norm.weight"), {768}},
    };
    for (int layer = 0; layer < 12; ++layer) {
        shapes[prefix + QStringLiteral("encoder.layers.%1.self_attn.q_proj.weight").arg(layer)] = {
            768, 768};
    }
    return ShapeOnlySource(shapes);
}

ShapeOnlySource fullSizeSd2()
{
    std::map<QString, std::vector<int64_t>> shapes{
        {kSd2Prefix + QStringLiteral("token_embedding.weight"), {49408, 1024}},
        {kSd2Prefix + QStringLiteral("positional_embedding"), {77, 1024}},
        {kSd2Prefix + QStringLiteral("text_projection"), {1024, 1024}},
    };
    for (int block = 0; block < 24; ++block) {
        shapes[kSd2Prefix +
               QStringLiteral("transformer.resblocks.%1.attn.in_proj_weight").arg(block)] = {3072,
                                                                                             1024};
    }
    return ShapeOnlySource(shapes);
}

// The SD1-layout reference file with `edit` applied to its tensor list, written to `path`.
void writeEditedSd1File(
    const QString& path,
    const std::function<void(std::vector<std::pair<QString, at::Tensor>>&)>& edit)
{
    const auto original =
        io::SafeTensorsFile::open(clipTextPath(QStringLiteral("clip_text_sd1_layout.safetensors")));
    std::vector<std::pair<QString, at::Tensor>> tensors;
    for (const QString& name : original.names()) {
        tensors.emplace_back(name, original.tensor(name));
    }
    edit(tensors);
    io::writeSafeTensors(path, tensors);
}

} // namespace

class TestClipTextEncoder : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { at::set_num_threads(1); }

    void sd1LayoutMatchesReference_data()
    {
        QTest::addColumn<int>("clipSkip");
        QTest::addColumn<QString>("expected");
        QTest::newRow("clip skip 1 (last)") << 1 << QStringLiteral("last_hidden_state");
        QTest::newRow("clip skip 2") << 2 << QStringLiteral("penultimate_ln");
    }

    void sd1LayoutMatchesReference()
    {
        QFETCH(int, clipSkip);
        QFETCH(QString, expected);
        const auto source =
            io::openTensorSource(clipTextPath(QStringLiteral("clip_text_sd1_layout.safetensors")));
        ClipTextConfig config = detectClipTextEncoder(*source, kTinyHeads).config;
        config.clipSkip = clipSkip;
        ClipTextEncoder encoder = loadClipTextEncoder(*source, config, kSd1Prefix);

        STUDIO_COMPARE_TENSORS(encoder(ioInputIds()), ioTensor(expected), kAtol, kRtol);
    }

    void sd1HiddenStatesMatchReference()
    {
        ClipTextEncoder encoder =
            loadDetected(clipTextPath(QStringLiteral("clip_text_sd1_layout.safetensors")));
        const std::vector<at::Tensor> states = encoder->hiddenStates(ioInputIds());

        QCOMPARE(states.size(), size_t{3});
        STUDIO_COMPARE_TENSORS(states[0], ioTensor(QStringLiteral("embeddings")), kAtol, kRtol);
        STUDIO_COMPARE_TENSORS(states[1], ioTensor(QStringLiteral("hidden_after_block_0")), kAtol,
                               kRtol);
        STUDIO_COMPARE_TENSORS(states[1], ioTensor(QStringLiteral("penultimate_pre_ln")), kAtol,
                               kRtol);
        STUDIO_COMPARE_TENSORS(states[2], ioTensor(QStringLiteral("hidden_after_block_1")), kAtol,
                               kRtol);
        STUDIO_COMPARE_TENSORS(states[2], ioTensor(QStringLiteral("last_hidden_state_pre_ln")),
                               kAtol, kRtol);
        STUDIO_COMPARE_TENSORS(encoder->finalLayerNorm(states[2]),
                               ioTensor(QStringLiteral("last_hidden_state")), kAtol, kRtol);
    }

    void sd2LayoutMatchesReference()
    {
        // Detected: GELU, penultimate layer, ln_final.
        ClipTextEncoder encoder =
            loadDetected(clipTextPath(QStringLiteral("clip_text_sd2_layout.safetensors")));

        STUDIO_COMPARE_TENSORS(encoder(ioInputIds()),
                               ioTensor(QStringLiteral("gelu_penultimate_ln")), kAtol, kRtol);
    }

    void sd2LastLayerMatchesReference()
    {
        const auto source =
            io::openTensorSource(clipTextPath(QStringLiteral("clip_text_sd2_layout.safetensors")));
        ClipTextConfig config = detectClipTextEncoder(*source, kTinyHeads).config;
        config.clipSkip = 1;
        ClipTextEncoder encoder = loadClipTextEncoder(*source, config, kSd2Prefix);

        STUDIO_COMPARE_TENSORS(encoder(ioInputIds()),
                               ioTensor(QStringLiteral("gelu_last_hidden_state")), kAtol, kRtol);
        STUDIO_COMPARE_TENSORS(encoder->hiddenStates(ioInputIds()).back(),
                               ioTensor(QStringLiteral("gelu_last_hidden_state_pre_ln")), kAtol,
                               kRtol);
    }

    // The activation is part of the config, not of the layout: OpenAI's own file has OpenCLIP
    // names and QuickGELU.
    void openAiWeightsLoadWithQuickGelu()
    {
        const auto source =
            io::openTensorSource(clipTextPath(QStringLiteral("clip_text_weights.safetensors")));
        ClipTextConfig config;
        config.layout = ClipTextLayout::Sd2OpenClip;
        config.width = 32;
        config.layers = 2;
        config.heads = kTinyHeads;
        config.activation = ClipTextActivation::QuickGelu;
        config.clipSkip = 1;
        ClipTextEncoder encoder = loadClipTextEncoder(*source, config, QString());

        STUDIO_COMPARE_TENSORS(encoder(ioInputIds()), ioTensor(QStringLiteral("last_hidden_state")),
                               kAtol, kRtol);
    }

    // With the causal mask, a prefix of the ids gives the prefix of the outputs. Not bit-exact:
    // BLAS blocks the shorter matmuls differently, which moves the last float bits (~1e-6).
    void shorterSequenceIsPrefixOfFullOutput()
    {
        ClipTextEncoder encoder =
            loadDetected(clipTextPath(QStringLiteral("clip_text_sd1_layout.safetensors")));
        const at::Tensor ids = ioInputIds();
        const at::Tensor full = encoder(ids);

        const at::Tensor prefix = encoder(ids.slice(/*dim=*/1, 0, 12));

        STUDIO_COMPARE_TENSORS(prefix, full.slice(/*dim=*/1, 0, 12), 1e-5, 1e-5);
    }

    void detectsTinyLayouts_data()
    {
        QTest::addColumn<QString>("file");
        QTest::addColumn<ClipTextLayout>("layout");
        QTest::addColumn<QString>("prefix");
        QTest::addColumn<ClipTextActivation>("activation");
        QTest::addColumn<int>("clipSkip");
        QTest::newRow("sd1") << QStringLiteral("clip_text_sd1_layout")
                             << ClipTextLayout::Sd1HuggingFace << kSd1Prefix
                             << ClipTextActivation::QuickGelu << 1;
        QTest::newRow("sd2") << QStringLiteral("clip_text_sd2_layout")
                             << ClipTextLayout::Sd2OpenClip << kSd2Prefix
                             << ClipTextActivation::Gelu << 2;
    }

    void detectsTinyLayouts()
    {
        QFETCH(QString, file);
        QFETCH(ClipTextLayout, layout);
        QFETCH(QString, prefix);
        QFETCH(ClipTextActivation, activation);
        QFETCH(int, clipSkip);
        const int heads = headsFromYaml(clipTextPath(file + QStringLiteral(".yaml")));
        QCOMPARE(heads, kTinyHeads);

        const auto source =
            io::openTensorSource(clipTextPath(file + QStringLiteral(".safetensors")));
        const DetectedClipText detected = detectClipTextEncoder(*source, heads);

        QCOMPARE(detected.prefix, prefix);
        QCOMPARE(detected.config.layout, layout);
        QCOMPARE(detected.config.width, 32);
        QCOMPARE(detected.config.layers, 2);
        QCOMPARE(detected.config.heads, kTinyHeads);
        QCOMPARE(detected.config.vocabSize, 49408);
        QCOMPARE(detected.config.contextLength, 77);
        QCOMPARE(detected.config.activation, activation);
        QCOMPARE(detected.config.clipSkip, clipSkip);
    }

    // Width 32 is not a multiple of 64: the YAML's heads are required, and must divide it.
    void tinyHeadsMustBeGiven()
    {
        const auto source =
            io::openTensorSource(clipTextPath(QStringLiteral("clip_text_sd1_layout.safetensors")));

        STUDIO_VERIFY_ERROR(detectClipTextEncoder(*source), "cond_stage_config.params.heads");
        STUDIO_VERIFY_ERROR(detectClipTextEncoder(*source, 5), "heads 5 do not divide the width");
    }

    void detectsFullSizeModels()
    {
        const DetectedClipText sd1 = detectClipTextEncoder(fullSizeSd1(kSd1Prefix));
        QCOMPARE(sd1.prefix, kSd1Prefix);
        QCOMPARE(sd1.config.width, 768);
        QCOMPARE(sd1.config.layers, 12);
        QCOMPARE(sd1.config.heads, 12);
        QCOMPARE(sd1.config.clipSkip, 1);

        const DetectedClipText sd2 = detectClipTextEncoder(fullSizeSd2());
        QCOMPARE(sd2.prefix, kSd2Prefix);
        QCOMPARE(sd2.config.layout, ClipTextLayout::Sd2OpenClip);
        QCOMPARE(sd2.config.width, 1024);
        QCOMPARE(sd2.config.layers, 24);
        QCOMPARE(sd2.config.heads, 16);
        QCOMPARE(sd2.config.activation, ClipTextActivation::Gelu);
        QCOMPARE(sd2.config.clipSkip, 2);
    }

    void detectsEarlySd1LayoutWithoutTextModel()
    {
        const QString prefix = QStringLiteral("cond_stage_model.transformer.");

        const DetectedClipText detected = detectClipTextEncoder(fullSizeSd1(prefix));

        QCOMPARE(detected.prefix, prefix);
        QCOMPARE(detected.config.layout, ClipTextLayout::Sd1HuggingFace);
        QCOMPARE(detected.config.layers, 12);
    }

    void noTextEncoderIsReported()
    {
        const auto source = io::openTensorSource(
            test::referencePath(QStringLiteral("full/pipeline_io.safetensors")));

        STUDIO_VERIFY_ERROR(detectClipTextEncoder(*source, kTinyHeads),
                            "has no SD1 or SD2 text encoder");
    }

    // README section 9: full/tiny_sd1 with its YAML; ids and expected context in pipeline_io.
    void tinyModelTextContextMatchesPipeline()
    {
        const int heads = headsFromYaml(test::referencePath(QStringLiteral("full/tiny_sd1.yaml")));
        QCOMPARE(heads, kTinyHeads);
        ClipTextEncoder encoder =
            loadDetected(test::referencePath(QStringLiteral("full/tiny_sd1.safetensors")), heads);
        const auto pipeline = io::SafeTensorsFile::open(
            test::referencePath(QStringLiteral("full/pipeline_io.safetensors")));

        const at::Tensor context =
            encoder(pipeline.tensor(QStringLiteral("input_ids")).to(at::kLong));
        const at::Tensor uncondContext =
            encoder(pipeline.tensor(QStringLiteral("uncond_input_ids")).to(at::kLong));

        STUDIO_COMPARE_TENSORS(context, pipeline.tensor(QStringLiteral("context")), kAtol, kRtol);
        STUDIO_COMPARE_TENSORS(uncondContext, pipeline.tensor(QStringLiteral("uncond_context")),
                               kAtol, kRtol);
    }

    void loadedEncoderIsFrozen()
    {
        ClipTextEncoder encoder =
            loadDetected(clipTextPath(QStringLiteral("clip_text_sd1_layout.safetensors")));

        QVERIFY(!encoder->is_training());
        for (const at::Tensor& parameter : encoder->parameters()) {
            QVERIFY(!parameter.requires_grad());
        }
    }

    void missingKeyIsReported()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString path = dir.filePath(QStringLiteral("missing.safetensors"));
        const QString removed = kSd1Prefix + QStringLiteral("encoder.layers.1.mlp.fc2.weight");
        writeEditedSd1File(path, [&](std::vector<std::pair<QString, at::Tensor>>& tensors) {
            tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                                         [&](const auto& item) { return item.first == removed; }),
                          tensors.end());
        });

        STUDIO_VERIFY_ERROR(loadDetected(path), removed);
        STUDIO_VERIFY_ERROR(loadDetected(path), "has no tensor");
    }

    void wrongShapeIsReported()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString path = dir.filePath(QStringLiteral("shape.safetensors"));
        const QString changed = kSd1Prefix + QStringLiteral("final_layer_norm.weight");
        writeEditedSd1File(path, [&](std::vector<std::pair<QString, at::Tensor>>& tensors) {
            for (auto& item : tensors) {
                if (item.first == changed) {
                    item.second = at::ones({31});
                }
            }
        });

        STUDIO_VERIFY_ERROR(loadDetected(path), changed);
        STUDIO_VERIFY_ERROR(loadDetected(path), "has shape [31]");
    }

    void wrongWidthForTheWeightsIsReported()
    {
        const auto source =
            io::openTensorSource(clipTextPath(QStringLiteral("clip_text_sd2_layout.safetensors")));
        ClipTextConfig config = detectClipTextEncoder(*source, kTinyHeads).config;
        config.width = 64;
        config.heads = 1;

        STUDIO_VERIFY_ERROR(loadClipTextEncoder(*source, config, kSd2Prefix), "has shape");
    }

    void invalidInputIdsAreRejected()
    {
        ClipTextEncoder encoder =
            loadDetected(clipTextPath(QStringLiteral("clip_text_sd1_layout.safetensors")));
        const at::Tensor ids = ioInputIds();

        STUDIO_VERIFY_ERROR(encoder(ids[0]), "shape [batch, 1..77]");
        STUDIO_VERIFY_ERROR(encoder(at::zeros({1, 78}, at::kLong)), "shape [batch, 1..77]");
        STUDIO_VERIFY_ERROR(encoder(ids.to(at::kFloat)), "integer token ids");
        STUDIO_VERIFY_ERROR(encoder(at::full({1, 77}, 49408, at::kLong)), "token id 49408");
        STUDIO_VERIFY_ERROR(encoder(at::full({1, 77}, -1, at::kLong)), "token id -1");
    }

    void invalidConfigsAreRejected()
    {
        ClipTextConfig config = ClipTextConfig::sd1();
        config.clipSkip = 0;
        STUDIO_VERIFY_ERROR(ClipTextEncoder{config}, "CLIP skip 0 is outside 1..12");

        config.clipSkip = 13;
        STUDIO_VERIFY_ERROR(ClipTextEncoder{config}, "CLIP skip 13 is outside 1..12");

        config = ClipTextConfig::sd2();
        config.heads = 15;
        STUDIO_VERIFY_ERROR(config.validate(), "heads 15 do not divide the width 1024");
    }
};

QTEST_GUILESS_MAIN(TestClipTextEncoder)
#include "TestClipTextEncoder.moc"
