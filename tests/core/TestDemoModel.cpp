// The demo base model trainer (core/demo/DemoModelTrainer.h) on a very short run: the files it
// writes load through the standard loader, its losses fall, the checkpoint is small, and a
// picture can be generated from it.

#include "core/Error.h"
#include "core/demo/DemoModelTrainer.h"
#include "core/diffusion/ImageGenerator.h"
#include "core/diffusion/StableDiffusion.h"
#include "core/io/SafeTensors.h"

#include <ATen/ATen.h>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QObject>
#include <QTemporaryDir>
#include <QTest>

using namespace studio;

namespace {

demo::DemoModelOptions shortRun()
{
    demo::DemoModelOptions options;
    options.vaeSteps = 40;
    options.unetSteps = 24;
    options.size = 16;
    options.batchSize = 4;
    options.seed = 7;
    return options;
}

} // namespace

class TestDemoModel : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void shortRunWritesALoadableModelAndLearns()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const demo::DemoModelResult result = demo::trainDemoModel(dir.path(), shortRun());

        QCOMPARE(result.vaeLosses.size(), size_t(40));
        QCOMPARE(result.unetLosses.size(), size_t(24));
        for (double loss : result.vaeLosses) {
            QVERIFY(std::isfinite(loss));
        }
        const double vaeFirst = demo::meanLoss(result.vaeLosses, 8, false);
        const double vaeLast = demo::meanLoss(result.vaeLosses, 8, true);
        QVERIFY2(vaeLast < 0.9 * vaeFirst,
                 qPrintable(QStringLiteral("vae %1 -> %2").arg(vaeFirst).arg(vaeLast)));
        const double unetFirst = demo::meanLoss(result.unetLosses, 6, false);
        const double unetLast = demo::meanLoss(result.unetLosses, 6, true);
        QVERIFY2(unetLast < unetFirst,
                 qPrintable(QStringLiteral("unet %1 -> %2").arg(unetFirst).arg(unetLast)));
        QVERIFY(result.scaleFactor > 0.0 && std::isfinite(result.scaleFactor));

        for (const char* name : {"demo.safetensors", "demo.yaml", "vocab.json", "merges.txt"}) {
            QVERIFY2(QFile::exists(QDir(dir.path()).filePath(QLatin1String(name))), name);
        }
        QVERIFY(result.checkpointBytes > 0);
        QVERIFY(result.checkpointBytes < 30 * 1024 * 1024);
        QCOMPARE(QFileInfo(result.checkpointPath).size(), result.checkpointBytes);

        const io::SafeTensorsFile file = io::SafeTensorsFile::open(result.checkpointPath);
        QVERIFY(file.contains(QStringLiteral("model.diffusion_model.input_blocks.0.0.weight")));
        QVERIFY(file.contains(QStringLiteral("first_stage_model.decoder.conv_out.weight")));
        QVERIFY(file.contains(QStringLiteral(
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight")));

        StableDiffusionOptions options;
        options.checkpointPath = result.checkpointPath;
        options.tokenizerPath = dir.path();
        const std::unique_ptr<StableDiffusion> model = StableDiffusion::load(options);
        QCOMPARE(model->config().scaleFactor, result.scaleFactor);
        QCOMPARE(model->config().unet.modelChannels, 64);
        QCOMPARE(nativeImageSize(*model, result.checkpointPath, QString()), 16);
    }

    void sameSeedSameWeights()
    {
        QTemporaryDir first;
        QTemporaryDir second;
        demo::DemoModelOptions options = shortRun();
        options.vaeSteps = 2;
        options.unetSteps = 2;
        const demo::DemoModelResult a = demo::trainDemoModel(first.path(), options);
        const demo::DemoModelResult b = demo::trainDemoModel(second.path(), options);
        QCOMPARE(a.unetLosses, b.unetLosses);
        QFile fa(a.checkpointPath);
        QFile fb(b.checkpointPath);
        QVERIFY(fa.open(QIODevice::ReadOnly) && fb.open(QIODevice::ReadOnly));
        QVERIFY(fa.readAll() == fb.readAll());
    }

    void rejectsBadOptions()
    {
        QTemporaryDir dir;
        demo::DemoModelOptions options = shortRun();
        options.size = 40;
        QVERIFY_THROWS_EXCEPTION(Error, demo::trainDemoModel(dir.path(), options));
        options = shortRun();
        options.unetSteps = 0;
        QVERIFY_THROWS_EXCEPTION(Error, demo::trainDemoModel(dir.path(), options));
    }
};

QTEST_GUILESS_MAIN(TestDemoModel)
#include "TestDemoModel.moc"
