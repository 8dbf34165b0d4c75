// Prompts to conditioning on the tiny reference model: plain prompts give the reference
// context, emphasis weights and mean restoration follow the webui, long prompts use 75-token
// chunks, and a batch is padded to its longest prompt.

#include "support/TestSupport.h"

#include "core/diffusion/ModelConfig.h"
#include "core/io/SafeTensors.h"
#include "core/io/TensorSource.h"
#include "core/text/PromptEncoder.h"

#include <torch/utils.h>

#include <QObject>

using namespace studio;

class TestPromptEncoder : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testPlainPromptsMatchReference();
    void testEmphasisScalesAndRestoresTheMean();
    void testLongPromptsAreChunked();
    void testBatchIsPaddedToTheLongestPrompt();

private:
    std::unique_ptr<PromptEncoder> m_prompts;
    ClipTextEncoder m_encoder{nullptr};
};

void TestPromptEncoder::initTestCase()
{
    at::set_num_threads(1);
    const QString checkpoint = test::referencePath(QStringLiteral("full/tiny_sd1.safetensors"));
    const auto source = io::openTensorSource(checkpoint);
    const ModelConfig config = readLdmConfig(ldmConfigPathFor(checkpoint));
    const DetectedClipText detected =
        detectClipTextEncoder(*source, config.textParams.value(QStringLiteral("heads")).toInt());
    m_encoder = loadClipTextEncoder(*source, detected.config, detected.prefix);
    m_prompts = std::make_unique<PromptEncoder>(ClipTokenizer(test::referencePath(QStringLiteral(
                                                    "tokenizer/bpe_simple_vocab_16e6.txt.gz"))),
                                                m_encoder);
}

void TestPromptEncoder::testPlainPromptsMatchReference()
{
    const io::SafeTensorsFile io = io::SafeTensorsFile::open(
        test::referencePath(QStringLiteral("full/pipeline_io.safetensors")));
    const at::Tensor context =
        m_prompts->encode({QStringLiteral("a photo of a cat sitting on a red sofa"),
                           QStringLiteral("a watercolor painting of a lighthouse at dusk")});
    STUDIO_COMPARE_TENSORS(context, io.tensor(QStringLiteral("context")), 1e-4, 1e-4);
    STUDIO_COMPARE_TENSORS(m_prompts->encode({QString()}),
                           io.tensor(QStringLiteral("uncond_context")), 1e-4, 1e-4);
}

void TestPromptEncoder::testEmphasisScalesAndRestoresTheMean()
{
    // "a (red:1.5) sofa": the token of "red" is weighted 1.5, then the mean is restored.
    const at::Tensor plain = m_prompts->encode({QStringLiteral("a red sofa")});
    const at::Tensor emphasized = m_prompts->encode({QStringLiteral("a (red:1.5) sofa")});
    at::Tensor weights = at::ones({1, 77});
    weights[0][2] = 1.5; // [start, a, red, sofa, end, ...]
    const at::Tensor expected = plain * weights.unsqueeze(-1);
    STUDIO_COMPARE_TENSORS(emphasized, expected * (plain.mean() / expected.mean()), 1e-6, 1e-6);
    QVERIFY(std::abs(emphasized.mean().item<double>() - plain.mean().item<double>()) < 1e-6);

    // (word) is 1.1 and [word] 1/1.1: both change the conditioning.
    QVERIFY(!at::allclose(m_prompts->encode({QStringLiteral("a (red) sofa")}), plain));
    QVERIFY(!at::allclose(m_prompts->encode({QStringLiteral("a [red] sofa")}), plain));
}

void TestPromptEncoder::testLongPromptsAreChunked()
{
    QStringList words;
    for (int i = 0; i < 40; ++i) {
        words << QStringLiteral("red cat");
    }
    const at::Tensor context = m_prompts->encode({words.join(QLatin1Char(' '))}); // 80 tokens
    QCOMPARE(test::shapeOf(context), QStringLiteral("[1, 154, 32]"));

    // BREAK closes a chunk early.
    const at::Tensor broken = m_prompts->encode({QStringLiteral("a cat BREAK a sofa")});
    QCOMPARE(test::shapeOf(broken), QStringLiteral("[1, 154, 32]"));
    STUDIO_COMPARE_TENSORS(broken.narrow(1, 0, 77), m_prompts->encode({QStringLiteral("a cat")}),
                           1e-6, 1e-6);
}

void TestPromptEncoder::testBatchIsPaddedToTheLongestPrompt()
{
    QStringList words;
    for (int i = 0; i < 40; ++i) {
        words << QStringLiteral("red cat");
    }
    const at::Tensor batch =
        m_prompts->encode({words.join(QLatin1Char(' ')), QStringLiteral("a sofa")});
    QCOMPARE(test::shapeOf(batch), QStringLiteral("[2, 154, 32]"));
    // The short prompt's second chunk is the empty prompt's encoding.
    STUDIO_COMPARE_TENSORS(batch[1].narrow(0, 77, 77), m_prompts->encode({QString()})[0], 1e-6,
                           1e-6);
}

QTEST_GUILESS_MAIN(TestPromptEncoder)
#include "TestPromptEncoder.moc"
