// Hypernetwork files as the webui writes them: keys, key types, layout and values; legacy files;
// seeded creation; the .optim side file.

#include "support/TestSupport.h"

#include "core/hypernetwork/HypernetworkFile.h"
#include "core/hypernetwork/OptimizerStateFile.h"
#include "core/io/TorchArchive.h"

#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/optim/adamw.h>
#include <torch/utils.h>

#include <QDir>
#include <QFile>
#include <QObject>
#include <QTemporaryDir>

using namespace studio;
using py::Kind;
using py::Value;
using py::ValuePtr;

namespace {

// Compares two pickled trees: kinds, dict keys and their order, list lengths, tensor shapes
// and dtypes, and (unless `skipValues` names the top-level key) scalar and tensor values.
QString treeDifference(const Value& ours, const Value& theirs, const QString& path,
                       const QStringList& skipValues, bool compareTensorValues)
{
    if (ours.typeName() != theirs.typeName()) {
        return QStringLiteral("%1: %2 vs %3").arg(path, ours.typeName(), theirs.typeName());
    }
    switch (ours.kind()) {
    case Kind::Dict: {
        if (ours.entries().size() != theirs.entries().size()) {
            return QStringLiteral("%1: %2 vs %3 keys")
                .arg(path)
                .arg(ours.entries().size())
                .arg(theirs.entries().size());
        }
        for (size_t i = 0; i < ours.entries().size(); ++i) {
            const py::DictEntry& a = ours.entries()[i];
            const py::DictEntry& b = theirs.entries()[i];
            QString difference =
                treeDifference(*a.key, *b.key, path + QStringLiteral("/key"), {}, true);
            if (!difference.isEmpty()) {
                return difference;
            }
            const QString keyText =
                a.key->is(Kind::String) ? a.key->toStr() : QString::number(a.key->toInt());
            if (path.isEmpty() && skipValues.contains(keyText)) {
                continue;
            }
            difference = treeDifference(*a.value, *b.value, path + QLatin1Char('/') + keyText, {},
                                        compareTensorValues);
            if (!difference.isEmpty()) {
                return difference;
            }
        }
        if (bool(ours.attributes()) != bool(theirs.attributes())) {
            return path + QStringLiteral(": attributes differ");
        }
        return ours.attributes() ? treeDifference(*ours.attributes(), *theirs.attributes(),
                                                  path + QStringLiteral("@"), {}, true)
                                 : QString();
    }
    case Kind::List:
    case Kind::Tuple:
        if (ours.items().size() != theirs.items().size()) {
            return path + QStringLiteral(": lengths differ");
        }
        for (size_t i = 0; i < ours.items().size(); ++i) {
            const QString difference =
                treeDifference(*ours.items()[i], *theirs.items()[i],
                               path + QStringLiteral("[%1]").arg(i), {}, compareTensorValues);
            if (!difference.isEmpty()) {
                return difference;
            }
        }
        return {};
    case Kind::Tensor: {
        const at::Tensor& a = ours.toTensor();
        const at::Tensor& b = theirs.toTensor();
        if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) {
            return path + QStringLiteral(": tensor shape or type differs");
        }
        return compareTensorValues && !at::equal(a, b) ? path + QStringLiteral(": values differ")
                                                       : QString();
    }
    case Kind::None:
        return {};
    case Kind::Bool:
        return ours.toBool() == theirs.toBool() ? QString() : path + QStringLiteral(": bool");
    case Kind::Int:
        return ours.toInt() == theirs.toInt() ? QString() : path + QStringLiteral(": int");
    case Kind::Float:
        return ours.toDouble() == theirs.toDouble() ? QString() : path + QStringLiteral(": float");
    case Kind::String:
        return ours.toStr() == theirs.toStr()
                   ? QString()
                   : QStringLiteral("%1: '%2' vs '%3'").arg(path, ours.toStr(), theirs.toStr());
    default:
        return path + QStringLiteral(": unexpected ") + ours.typeName();
    }
}

ValuePtr readTree(const QString& path)
{
    return io::readTorchFile(path);
}

QStringList referenceHypernetworkFiles()
{
    QStringList files;
    for (const QString& folder : {QStringLiteral("hypernetworks"), QStringLiteral("unet")}) {
        const QDir dir(test::referencePath(folder));
        for (const QString& name : dir.entryList({QStringLiteral("*.pt")}, QDir::Files)) {
            files << dir.filePath(name);
        }
    }
    return files;
}

// A legacy (NovelAI-era) file: linear1/linear2 keys and only `step` and `name` as metadata.
ValuePtr legacyPickle(const at::Tensor& w1, const at::Tensor& b1, const at::Tensor& w2,
                      const at::Tensor& b2)
{
    auto stateDict = [&] {
        ValuePtr dict = Value::orderedDict();
        dict->set(QStringLiteral("linear1.weight"), Value::tensor(w1));
        dict->set(QStringLiteral("linear1.bias"), Value::tensor(b1));
        dict->set(QStringLiteral("linear2.weight"), Value::tensor(w2));
        dict->set(QStringLiteral("linear2.bias"), Value::tensor(b2));
        return dict;
    };
    ValuePtr root = Value::dict();
    root->set(Value::integer(8), Value::tuple({stateDict(), stateDict()}));
    root->set(QStringLiteral("step"), Value::integer(5));
    root->set(QStringLiteral("name"), Value::string(QStringLiteral("old")));
    return root;
}

HypernetworkConfig smallConfig()
{
    HypernetworkConfig config;
    config.name = QStringLiteral("small");
    config.sizes = {8, 12};
    config.activation = QStringLiteral("relu");
    config.layerNorm = true;
    return config;
}

at::Tensor trainingLoss(const Hypernetwork& hypernetwork, const at::Tensor& context)
{
    const auto [k, v] = hypernetwork.apply(context);
    return (k * k).mean() + (v * 0.5).sin().mean();
}

} // namespace

class TestHypernetworkFile : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init() { torch::manual_seed(0); }
    void testCreatedFileMatchesWebuiLayout_data();
    void testCreatedFileMatchesWebuiLayout();
    void testResavedReferenceFilesAreUnchanged_data();
    void testResavedReferenceFilesAreUnchanged();
    void testLegacyFileLoadsWithWebuiDefaults();
    void testLegacyDropoutDerivation();
    void testSeededCreationIsReproducible();
    void testInitializationSchemes_data();
    void testInitializationSchemes();
    void testOptimizerStateRoundTrip();
    void testOptimizerStateRejectedForAnotherFile();
    void testMismatchedStateDictIsExplained();
    void testWrongMetadataTypeNamesTheField();
};

void TestHypernetworkFile::testCreatedFileMatchesWebuiLayout_data()
{
    // Reference files created by the webui from these form values (reference README 1).
    QTest::addColumn<QString>("referenceFile");
    QTest::addColumn<QString>("layers");
    QTest::addColumn<QString>("activation");
    QTest::addColumn<bool>("layerNorm");
    QTest::addColumn<QString>("dropout"); // empty: "Use dropout" unchecked
    QTest::addColumn<bool>("activateOutput");
    QTest::addColumn<QString>("init");
    QTest::addRow("linear 1-2-1") << "a_linear_121"
                                  << "1, 2, 1"
                                  << "linear" << false << "" << false << "Normal";
    QTest::addRow("relu layer norm dropout")
        << "b_relu_1221_ln_drop"
        << "1, 2, 2, 1"
        << "relu" << true << "0, 0.3, 0.3, 0" << false << "KaimingNormal";
    QTest::addRow("swish output activation") << "c_swish_1p5_actout"
                                             << "1, 1.5, 1"
                                             << "swish" << false << "" << true << "XavierUniform";
    QTest::addRow("sigmoid dropout")
        << "i_sigmoid_1551_drop"
        << "1, 1.5, 1.5, 1"
        << "sigmoid" << false << "0, 0.1, 0.2, 0" << false << "XavierUniform";
}

void TestHypernetworkFile::testCreatedFileMatchesWebuiLayout()
{
    QFETCH(QString, referenceFile);
    QFETCH(QString, layers);
    QFETCH(QString, activation);
    QFETCH(bool, layerNorm);
    QFETCH(QString, dropout);
    QFETCH(bool, activateOutput);
    QFETCH(QString, init);
    const QString referencePath =
        test::referencePath(QStringLiteral("hypernetworks/%1.pt").arg(referenceFile));
    const ValuePtr reference = readTree(referencePath);

    HypernetworkConfig config;
    config.name = referenceFile;
    config.sizes = loadHypernetwork(referencePath).config().sizes;
    config.layerStructure = parseNumberList(layers, QStringLiteral("layers"));
    config.layerStructureIntegerItems.clear();
    config.activation = activation;
    config.layerNorm = layerNorm;
    config.activateOutput = activateOutput;
    config.weightInit = parseWeightInit(init);
    config.useDropout = !dropout.isEmpty();
    if (config.useDropout) {
        config.dropoutStructure = parseNumberList(dropout, QStringLiteral("dropout"));
        config.dropoutStructureIntegerItems.clear();
    } else {
        config.dropoutStructure.assign(config.layerStructure.size(), 0.0);
        config.dropoutStructureIntegerItems.assign(config.layerStructure.size(), true);
    }

    QTemporaryDir dir;
    const QString path = dir.filePath(referenceFile + QStringLiteral(".pt"));
    saveHypernetwork(Hypernetwork::create(config), path);

    // Same keys in the same order, same types, same shapes and state-dict metadata. Values of
    // weights (random) and of what training sets later (step, checkpoint) naturally differ.
    const QStringList trainingKeys = {QStringLiteral("step"), QStringLiteral("sd_checkpoint"),
                                      QStringLiteral("sd_checkpoint_name")};
    const QString difference =
        treeDifference(*readTree(path), *reference, QString(), trainingKeys, false);
    QVERIFY2(difference.isEmpty(), qPrintable(difference));
}

void TestHypernetworkFile::testResavedReferenceFilesAreUnchanged_data()
{
    QTest::addColumn<QString>("path");
    for (const QString& path : referenceHypernetworkFiles()) {
        QTest::addRow("%s", qPrintable(QFileInfo(path).fileName())) << path;
    }
}

void TestHypernetworkFile::testResavedReferenceFilesAreUnchanged()
{
    QFETCH(QString, path);
    // Same file name in two folders: the archive's top folder is the file's base name.
    QTemporaryDir dir;
    QVERIFY(QDir(dir.path()).mkpath(QStringLiteral("once")) &&
            QDir(dir.path()).mkpath(QStringLiteral("twice")));
    const QString once = dir.filePath(QStringLiteral("once/net.pt"));
    const QString twice = dir.filePath(QStringLiteral("twice/net.pt"));

    saveHypernetwork(loadHypernetwork(path), once);
    const QString difference =
        treeDifference(*readTree(once), *readTree(path), QString(), {}, true);
    QVERIFY2(difference.isEmpty(), qPrintable(difference));

    // Saving what was loaded from our own file reproduces it byte for byte.
    saveHypernetwork(loadHypernetwork(once), twice);
    QFile a(once);
    QFile b(twice);
    QVERIFY(a.open(QIODevice::ReadOnly) && b.open(QIODevice::ReadOnly));
    QCOMPARE(a.readAll(), b.readAll());
}

void TestHypernetworkFile::testLegacyFileLoadsWithWebuiDefaults()
{
    const at::Tensor w1 = at::randn({16, 8});
    const at::Tensor b1 = at::randn({16});
    const at::Tensor w2 = at::randn({8, 16});
    const at::Tensor b2 = at::randn({8});
    const QByteArray bytes =
        io::serializeTorch(legacyPickle(w1, b1, w2, b2), QStringLiteral("old"));
    Hypernetwork hypernetwork =
        hypernetworkFromPickle(io::readTorchBytes(bytes, QStringLiteral("old.pt")),
                               QStringLiteral("old.pt"), QStringLiteral("old"));

    const HypernetworkConfig& config = hypernetwork.config();
    QCOMPARE(config.name, QStringLiteral("old"));
    QCOMPARE(config.step, int64_t(5));
    QCOMPARE(config.layerStructure, (std::vector<double>{1, 2, 1}));
    QVERIFY(!config.activation.has_value());
    QVERIFY(config.activateOutput);
    QVERIFY(!config.layerNorm);
    QCOMPARE(config.dropoutStructure, (std::vector<double>{0, 0, 0}));
    QCOMPARE(config.weightInit, WeightInit::Normal);

    // linear1/linear2 became linear.0/linear.1: x + W2 (W1 x + b1) + b2, no activation.
    torch::NoGradGuard noGrad;
    const at::Tensor x = at::randn({2, 3, 8});
    const at::Tensor expected = x + at::linear(at::linear(x, w1, b1), w2, b2);
    STUDIO_COMPARE_TENSORS(hypernetwork.apply(x).first, expected, 1e-5, 1e-5);
}

void TestHypernetworkFile::testLegacyDropoutDerivation()
{
    QCOMPARE(legacyDropoutStructure(3, false, true), (std::vector<double>{0, 0, 0}));
    QCOMPARE(legacyDropoutStructure(3, true, true), (std::vector<double>{0, 0.3, 0}));
    QCOMPARE(legacyDropoutStructure(3, true, false), (std::vector<double>{0, 0, 0}));
    QCOMPARE(legacyDropoutStructure(4, true, true), (std::vector<double>{0, 0.3, 0.3, 0}));
    QCOMPARE(legacyDropoutStructure(4, true, false), (std::vector<double>{0, 0.3, 0, 0}));
    QCOMPARE(legacyDropoutStructure(5, true, false), (std::vector<double>{0, 0.3, 0.3, 0, 0}));
}

void TestHypernetworkFile::testSeededCreationIsReproducible()
{
    HypernetworkConfig config = smallConfig();
    config.initSeed = 1234;
    const std::vector<at::Tensor> first = Hypernetwork::create(config).parameters();
    const std::vector<at::Tensor> second = Hypernetwork::create(config).parameters();
    QCOMPARE(first.size(), second.size());
    for (size_t i = 0; i < first.size(); ++i) {
        QVERIFY(at::equal(first[i], second[i]));
    }

    // As in the extension, a seed makes k and v start identical.
    const Hypernetwork seeded = Hypernetwork::create(config);
    const ModulePair& pair = seeded.modules().front();
    QVERIFY(at::equal(pair.k->parameters().front(), pair.v->parameters().front()));

    config.initSeed = 4321;
    QVERIFY(!at::equal(Hypernetwork::create(config).parameters().front(), first.front()));
    config.initSeed.reset();
    QVERIFY(!at::equal(Hypernetwork::create(config).parameters().front(),
                       Hypernetwork::create(config).parameters().front()));
}

void TestHypernetworkFile::testInitializationSchemes_data()
{
    QTest::addColumn<QString>("scheme");
    QTest::addColumn<double>("expectedStd"); // of the first Linear's weight, [2048, 1024]
    const double fanIn = 1024;
    const double fanOut = 2048;
    QTest::addRow("normal") << "Normal" << 0.02;
    QTest::addRow("xavier uniform") << "XavierUniform" << std::sqrt(2.0 / (fanIn + fanOut));
    QTest::addRow("xavier normal") << "XavierNormal" << std::sqrt(2.0 / (fanIn + fanOut));
    QTest::addRow("kaiming uniform") << "KaimingUniform" << std::sqrt(2.0 / fanIn);
    QTest::addRow("kaiming normal") << "KaimingNormal" << std::sqrt(2.0 / fanIn);
}

void TestHypernetworkFile::testInitializationSchemes()
{
    QFETCH(QString, scheme);
    QFETCH(double, expectedStd);
    HypernetworkConfig config;
    config.sizes = {1024};
    config.activation = QStringLiteral("relu");
    config.layerNorm = true;
    config.weightInit = parseWeightInit(scheme);
    config.normalStd = 0.02;
    config.initSeed = 7;
    const Hypernetwork hypernetwork = Hypernetwork::create(config);
    torch::nn::Sequential stages = hypernetwork.modules().front().k->linear;

    const at::Tensor weight = stages[0]->as<torch::nn::Linear>()->weight;
    const at::Tensor bias = stages[0]->as<torch::nn::Linear>()->bias;
    QVERIFY(std::abs(weight.std().item<double>() / expectedStd - 1.0) < 0.02);
    QVERIFY(std::abs(weight.mean().item<double>()) < expectedStd * 0.01);
    QCOMPARE(bias.abs().max().item<double>(), 0.0);

    // LayerNorm gamma ~ N(0, normal std) whatever the scheme (webui quirk), beta 0.
    const auto* norm = stages[2]->as<torch::nn::LayerNorm>();
    QVERIFY(norm != nullptr);
    QVERIFY(std::abs(norm->weight.std().item<double>() / 0.02 - 1.0) < 0.1);
    QCOMPARE(norm->bias.abs().max().item<double>(), 0.0);
}

void TestHypernetworkFile::testOptimizerStateRoundTrip()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("run.pt"));
    const at::Tensor context = at::randn({2, 5, 8});
    HypernetworkConfig config = smallConfig();
    config.sizes = {8};
    config.initSeed = 3;

    Hypernetwork original = Hypernetwork::create(config);
    original.train(true);
    torch::optim::AdamW optimizer(original.parameters(),
                                  torch::optim::AdamWOptions(1e-3).weight_decay(0.01));
    for (int step = 0; step < 2; ++step) {
        optimizer.zero_grad();
        trainingLoss(original, context).backward();
        optimizer.step();
    }
    saveHypernetwork(original, path);
    saveOptimizerStateFor(captureAdamW(optimizer, original.parameters()), path);

    // PyTorch's layout: {'hash', 'optimizer_name', 'optimizer_state_dict': {state, groups}}.
    const ValuePtr root = io::readTorchFile(optimizerStatePath(path));
    QCOMPARE(root->entries().front().key->toStr(), QStringLiteral("hash"));
    QCOMPARE(root->get(QStringLiteral("hash"))->toStr(), fileShortHash(path));
    QCOMPARE(root->get(QStringLiteral("optimizer_name"))->toStr(), QStringLiteral("AdamW"));
    const ValuePtr stateDict = root->get(QStringLiteral("optimizer_state_dict"));
    const ValuePtr firstState = stateDict->get(QStringLiteral("state"))->get(int64_t(0));
    QCOMPARE(firstState->get(QStringLiteral("step"))->toTensor().item<float>(), 2.0f);
    QVERIFY(firstState->get(QStringLiteral("exp_avg"))->is(Kind::Tensor));
    const ValuePtr group = stateDict->get(QStringLiteral("param_groups"))->items().front();
    QVERIFY(group->get(QStringLiteral("betas"))->is(Kind::Tuple));
    QCOMPARE(group->get(QStringLiteral("params"))->items().size(), original.parameters().size());

    // Resume: the reloaded pair continues exactly like the original.
    QString reason;
    const std::optional<OptimizerState> state = loadOptimizerStateFor(path, reason);
    QVERIFY2(state.has_value(), qPrintable(reason));
    Hypernetwork resumed = loadHypernetwork(path);
    resumed.train(true);
    torch::optim::AdamW resumedOptimizer(resumed.parameters(), torch::optim::AdamWOptions(5.0));
    restoreAdamW(*state, resumedOptimizer, resumed.parameters());
    for (auto* opt : {&optimizer, &resumedOptimizer}) {
        opt->zero_grad();
    }
    trainingLoss(original, context).backward();
    trainingLoss(resumed, context).backward();
    optimizer.step();
    resumedOptimizer.step();
    for (size_t i = 0; i < original.parameters().size(); ++i) {
        QVERIFY(at::equal(original.parameters()[i], resumed.parameters()[i]));
    }
}

void TestHypernetworkFile::testOptimizerStateRejectedForAnotherFile()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("net.pt"));
    QString reason;
    Hypernetwork hypernetwork = Hypernetwork::create(smallConfig());
    saveHypernetwork(hypernetwork, path);
    QVERIFY(!loadOptimizerStateFor(path, reason).has_value());
    QVERIFY2(reason.contains(QStringLiteral("no saved optimizer")), qPrintable(reason));

    torch::optim::AdamW optimizer(hypernetwork.parameters(), torch::optim::AdamWOptions(1e-3));
    saveOptimizerStateFor(captureAdamW(optimizer, hypernetwork.parameters()), path);
    QVERIFY(loadOptimizerStateFor(path, reason).has_value());

    hypernetwork.config().step = 10; // the .pt changes, the .optim stays: it no longer belongs
    saveHypernetwork(hypernetwork, path);
    QVERIFY(!loadOptimizerStateFor(path, reason).has_value());
    QVERIFY2(reason.contains(QStringLiteral("another version")), qPrintable(reason));
}

void TestHypernetworkFile::testMismatchedStateDictIsExplained()
{
    // A relu file read as if it had no activation: the indices do not match (issue #3717).
    ValuePtr root =
        io::readTorchFile(test::referencePath(QStringLiteral("hypernetworks/f_elu.pt")));
    root->set(QStringLiteral("activation_func"), Value::none());
    STUDIO_VERIFY_ERROR(hypernetworkFromPickle(root, QStringLiteral("'f.pt'"), QString()),
                        "missing [linear.1.bias");
}

void TestHypernetworkFile::testWrongMetadataTypeNamesTheField()
{
    ValuePtr root =
        io::readTorchFile(test::referencePath(QStringLiteral("hypernetworks/f_elu.pt")));
    root->set(QStringLiteral("layer_structure"), Value::string(QStringLiteral("1, 2, 1")));
    STUDIO_VERIFY_ERROR(hypernetworkFromPickle(root, QStringLiteral("'f.pt'"), QString()),
                        "field 'layer_structure' should be a list of numbers");

    root = io::readTorchFile(test::referencePath(QStringLiteral("hypernetworks/f_elu.pt")));
    root->set(QStringLiteral("activation_func"), Value::string(QStringLiteral("wobble")));
    STUDIO_VERIFY_ERROR(hypernetworkFromPickle(root, QStringLiteral("'f.pt'"), QString()),
                        "unknown activation 'wobble'");
}

QTEST_GUILESS_MAIN(TestHypernetworkFile)
#include "TestHypernetworkFile.moc"
