// Every hypernetwork file of the reference data (made by the webui and the extension) loads,
// has the layout the original built, and computes the original's k/v outputs.

#include "support/TestSupport.h"

#include "core/hypernetwork/Activation.h"
#include "core/hypernetwork/HypernetworkFile.h"
#include "core/io/SafeTensors.h"

#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/normalization.h>
#include <torch/utils.h>

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QObject>

#include <sstream>

using namespace studio;

namespace {

QJsonArray readJsonArray(const QString& path)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        return {};
    }
    return QJsonDocument::fromJson(file.readAll()).array();
}

QString formatFloat(double value)
{
    // Python's repr of the few floats that appear (0.3, 0.15, 1e-05).
    if (value == 1e-5) {
        return QStringLiteral("1e-05");
    }
    return QString::number(value, 'g', 12);
}

QString childRepr(const std::shared_ptr<torch::nn::Module>& child, const QString& indent);

// PyTorch's repr() of a Sequential, to compare the built layout with the original's.
QString sequentialRepr(const torch::nn::Sequential& sequential, const QString& indent)
{
    QString text = QStringLiteral("Sequential(\n");
    int index = 0;
    for (const auto& child : sequential->children()) {
        text += QStringLiteral("%1  (%2): %3\n")
                    .arg(indent)
                    .arg(index++)
                    .arg(childRepr(child, indent + QStringLiteral("  ")));
    }
    return text + indent + QLatin1Char(')');
}

QString childRepr(const std::shared_ptr<torch::nn::Module>& child, const QString& indent)
{
    if (const auto* linear = child->as<torch::nn::Linear>()) {
        return QStringLiteral("Linear(in_features=%1, out_features=%2, bias=%3)")
            .arg(linear->options.in_features())
            .arg(linear->options.out_features())
            .arg(linear->options.bias() ? QStringLiteral("True") : QStringLiteral("False"));
    }
    if (const auto* norm = child->as<torch::nn::LayerNorm>()) {
        return QStringLiteral("LayerNorm((%1,), eps=%2, elementwise_affine=True)")
            .arg(norm->options.normalized_shape().front())
            .arg(formatFloat(norm->options.eps()));
    }
    if (const auto* dropout = child->as<torch::nn::Dropout>()) {
        return QStringLiteral("Dropout(p=%1, inplace=False)")
            .arg(formatFloat(dropout->options.p()));
    }
    if (auto* block = child->as<ResBlock>()) {
        return QStringLiteral("ResBlock(\n%1  (linear): %2\n%1)")
            .arg(indent, sequentialRepr(block->linear, indent + QStringLiteral("  ")));
    }
    std::ostringstream stream;
    child->pretty_print(stream);
    return QString::fromStdString(stream.str());
}

at::Tensor parameterByName(const HypernetworkModule& module, const QString& key)
{
    for (const auto& item : module->named_parameters()) {
        if (QString::fromStdString(item.key()) == key) {
            return item.value();
        }
    }
    return {};
}

struct Expectation
{
    QJsonObject entry;
    bool extension;
};

std::vector<Expectation> allEntries()
{
    std::vector<Expectation> entries;
    for (const QJsonValue& value :
         readJsonArray(test::referencePath(QStringLiteral("hypernetworks/index.json")))) {
        if (value.toObject().contains(QStringLiteral("pt"))) { // not the chain's entry
            entries.push_back({value.toObject(), false});
        }
    }
    for (const QJsonValue& value :
         readJsonArray(test::referencePath(QStringLiteral("hypernetworks/index_extension.json")))) {
        entries.push_back({value.toObject(), true});
    }
    return entries;
}

} // namespace

class TestHypernetworkReference : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void testOutputsMatchReference_data();
    void testOutputsMatchReference();
    void testFreshInitResidualMatchesReference();
    void testChainMatchesReference();
    void testUnetHypernetworksLoadInReferenceParameterOrder_data();
    void testUnetHypernetworksLoadInReferenceParameterOrder();
    void testTrainModeForcesStrengthOne();

private:
    std::vector<Expectation> m_entries;
};

void TestHypernetworkReference::initTestCase()
{
    torch::manual_seed(0);
    m_entries = allEntries();
    // Every .pt of the folder is described by an index entry, so none goes untested.
    const QDir folder(test::referencePath(QStringLiteral("hypernetworks")));
    const auto files = folder.entryList({QStringLiteral("*.pt")}, QDir::Files);
    QVERIFY2(!files.isEmpty(),
             qPrintable(QStringLiteral("no reference hypernetworks in '%1'").arg(folder.path())));
    QCOMPARE(m_entries.size(), static_cast<size_t>(files.size()));
}

void TestHypernetworkReference::testOutputsMatchReference_data()
{
    QTest::addColumn<int>("index");
    for (size_t i = 0; i < m_entries.size(); ++i) {
        QTest::addRow("%s", qPrintable(m_entries[i].entry.value(QStringLiteral("name")).toString()))
            << static_cast<int>(i);
    }
}

void TestHypernetworkReference::testOutputsMatchReference()
{
    QFETCH(int, index);
    const QJsonObject entry = m_entries[static_cast<size_t>(index)].entry;
    const QString folder = QStringLiteral("hypernetworks/");
    Hypernetwork hypernetwork = loadHypernetwork(
        test::referencePath(folder + entry.value(QStringLiteral("pt")).toString()));
    const io::SafeTensorsFile expected = io::SafeTensorsFile::open(
        test::referencePath(folder + entry.value(QStringLiteral("safetensors")).toString()));

    // Sizes in file order, and the layout the original printed for each module.
    std::vector<int> sizes;
    for (const QJsonValue& size : entry.value(QStringLiteral("enable_sizes")).toArray()) {
        sizes.push_back(size.toInt());
    }
    QCOMPARE(hypernetwork.config().sizes, sizes);
    const QJsonObject reprs = entry.value(QStringLiteral("module_repr")).toObject();
    for (const ModulePair& pair : hypernetwork.modules()) {
        QCOMPARE(sequentialRepr(pair.k->linear, QString()),
                 reprs.value(QString::number(pair.size)).toString());
    }

    torch::NoGradGuard noGrad;
    for (const ModulePair& pair : hypernetwork.modules()) {
        const QString size = QString::number(pair.size);
        const at::Tensor context = expected.tensor(QStringLiteral("context_") + size);
        for (const auto& [strength, suffix] :
             {std::pair{1.0, QStringLiteral("_m1")}, std::pair{0.5, QStringLiteral("_m0.5")}}) {
            hypernetwork.setStrength(strength);
            const auto [k, v] = hypernetwork.apply(context);
            STUDIO_COMPARE_TENSORS(k, expected.tensor(QStringLiteral("k_") + size + suffix), 1e-5,
                                   1e-5);
            STUDIO_COMPARE_TENSORS(v, expected.tensor(QStringLiteral("v_") + size + suffix), 1e-5,
                                   1e-5);
        }

        // Files with a weight copy: every parameter is bit-identical to the original's.
        for (int j = 0; j < 2; ++j) {
            const HypernetworkModule& module = j == 0 ? pair.k : pair.v;
            for (const auto& item : module->named_parameters()) {
                const QString name = QStringLiteral("hn.%1.%2.%3")
                                         .arg(size)
                                         .arg(j)
                                         .arg(QString::fromStdString(item.key()));
                if (expected.contains(name)) {
                    QVERIFY(at::equal(item.value(), expected.tensor(name)));
                }
            }
        }
    }
}

void TestHypernetworkReference::testFreshInitResidualMatchesReference()
{
    // The unperturbed file's residual is only ~1e-2: compare k - context tightly.
    Hypernetwork hypernetwork =
        loadHypernetwork(test::referencePath(QStringLiteral("hypernetworks/a_linear_121.pt")));
    const io::SafeTensorsFile expected = io::SafeTensorsFile::open(
        test::referencePath(QStringLiteral("hypernetworks/a_linear_121.safetensors")));

    torch::NoGradGuard noGrad;
    for (const ModulePair& pair : hypernetwork.modules()) {
        const QString size = QString::number(pair.size);
        const at::Tensor context = expected.tensor(QStringLiteral("context_") + size);
        const auto [k, v] = hypernetwork.apply(context);
        STUDIO_COMPARE_TENSORS(
            k - context, expected.tensor(QStringLiteral("k_%1_m1").arg(size)) - context, 1e-6, 0.0);
        STUDIO_COMPARE_TENSORS(
            v - context, expected.tensor(QStringLiteral("v_%1_m1").arg(size)) - context, 1e-6, 0.0);
    }
}

void TestHypernetworkReference::testChainMatchesReference()
{
    Hypernetwork first =
        loadHypernetwork(test::referencePath(QStringLiteral("hypernetworks/f_elu.pt")));
    Hypernetwork second =
        loadHypernetwork(test::referencePath(QStringLiteral("hypernetworks/h_tanh_actout.pt")));
    first.setStrength(1.0);
    second.setStrength(0.5);
    const io::SafeTensorsFile expected = io::SafeTensorsFile::open(
        test::referencePath(QStringLiteral("hypernetworks/chain.safetensors")));

    torch::NoGradGuard noGrad;
    const auto [k, v] =
        applyHypernetworks({&first, &second}, expected.tensor(QStringLiteral("context_20")));
    STUDIO_COMPARE_TENSORS(k, expected.tensor(QStringLiteral("k_20")), 1e-5, 1e-5);
    STUDIO_COMPARE_TENSORS(v, expected.tensor(QStringLiteral("v_20")), 1e-5, 1e-5);

    // A width the chain has no module for passes through unchanged.
    const at::Tensor other = at::randn({1, 3, 7});
    const auto [kOther, vOther] = applyHypernetworks({&first, &second}, other);
    QVERIFY(at::equal(kOther, other) && at::equal(vOther, other));
}

void TestHypernetworkReference::testUnetHypernetworksLoadInReferenceParameterOrder_data()
{
    QTest::addColumn<QString>("hypernetworkFile");
    QTest::addColumn<QString>("trainStepFile");
    QTest::addRow("sd1 relu layer norm") << "unet_sd1_hn_relu_121_ln.pt"
                                         << "unet_sd1_train_step.safetensors";
    QTest::addRow("sd2 swish") << "unet_sd2_hn_swish_0p5.pt"
                               << "unet_sd2_train_step.safetensors";
    QTest::addRow("sd1 second tanh") << "unet_sd1_hn2_tanh_1p5.pt" << QString();
}

void TestHypernetworkReference::testUnetHypernetworksLoadInReferenceParameterOrder()
{
    QFETCH(QString, hypernetworkFile);
    QFETCH(QString, trainStepFile);
    const Hypernetwork hypernetwork =
        loadHypernetwork(test::referencePath(QStringLiteral("unet/") + hypernetworkFile));
    QVERIFY(hypernetwork.parameterCount() > 0);
    if (trainStepFile.isEmpty()) {
        return;
    }

    // The original's optimizer saw the parameters in this order; .optim indices depend on it.
    QStringList ours;
    for (const ModulePair& pair : hypernetwork.modules()) {
        for (int j = 0; j < 2; ++j) {
            const HypernetworkModule& module = j == 0 ? pair.k : pair.v;
            for (const auto& item : module->named_parameters()) {
                ours << QStringLiteral("%1.%2.%3")
                            .arg(pair.size)
                            .arg(j)
                            .arg(QString::fromStdString(item.key()));
            }
        }
    }
    const io::SafeTensorsFile step =
        io::SafeTensorsFile::open(test::referencePath(QStringLiteral("unet/") + trainStepFile));
    QStringList expected;
    const QJsonArray order =
        QJsonDocument::fromJson(step.metadata().at(QStringLiteral("param_order")).toUtf8()).array();
    for (const QJsonValue& name : order) {
        expected << name.toString();
    }
    QCOMPARE(ours, expected);
    QCOMPARE(hypernetwork.parameters().size(), static_cast<size_t>(expected.size()));
}

void TestHypernetworkReference::testTrainModeForcesStrengthOne()
{
    Hypernetwork hypernetwork =
        loadHypernetwork(test::referencePath(QStringLiteral("hypernetworks/f_elu.pt")));
    const at::Tensor context = at::randn({2, 4, 20});
    torch::NoGradGuard noGrad;

    hypernetwork.setStrength(1.0);
    const at::Tensor full = hypernetwork.apply(context).first;
    hypernetwork.setStrength(0.3);
    const at::Tensor weak = hypernetwork.apply(context).first;
    QVERIFY(!at::allclose(full, weak));

    hypernetwork.train(true); // f_elu has no dropout, so train mode is deterministic
    QVERIFY(at::allclose(hypernetwork.apply(context).first, full));
}

QTEST_GUILESS_MAIN(TestHypernetworkReference)
#include "TestHypernetworkReference.moc"
