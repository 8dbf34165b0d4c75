// The Merge page driven through its widgets, offscreen: inputs and weights by slider and spin
// box, the structure check with its reason in red, saving the merge (the file holds the weighted
// sum), and a preview grid generated on the tiny SD1 model on the page's own thread while the
// event loop keeps running; a click on a tile enlarges it.

#include "ui/MergePage.h"

#include "support/TestSupport.h"

#include "core/hypernetwork/HypernetworkFile.h"
#include "ui/MainWindow.h"
#include "ui/Settings.h"

#include <QDialog>
#include <QDoubleSpinBox>
#include <QFileInfo>
#include <QLabel>
#include <QLineEdit>
#include <QObject>
#include <QPushButton>
#include <QSettings>
#include <QSlider>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>
#include <QToolButton>

using studio::ui::MergePage;
using namespace studio;

namespace {

constexpr int kTimeout = 120000;

QString writeHypernetwork(const QString& path, std::vector<double> layers, uint64_t seed)
{
    HypernetworkConfig config;
    config.name = QFileInfo(path).completeBaseName();
    config.sizes = {32, 64};
    config.layerStructure = std::move(layers);
    config.activation = QStringLiteral("relu");
    config.dropoutStructure.assign(config.layerStructure.size(), 0.0);
    config.weightInit = WeightInit::KaimingNormal;
    config.initSeed = seed;
    saveHypernetwork(Hypernetwork::create(config), path);
    return path;
}

template <typename T> T* child(const QWidget& parent, const QString& name)
{
    T* widget = parent.findChild<T*>(name);
    if (widget == nullptr) {
        qWarning("no child named %s", qPrintable(name));
    }
    return widget;
}

bool isRed(const QLabel& label)
{
    return label.styleSheet().contains(QStringLiteral("#c62828"));
}

} // namespace

class TestMergePage : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanupTestCase();

    void testStructureCheck();
    void testWeightWidgets();
    void testSaveMerge();
    void testUnreadableInput();
    void testModelDescription();
    void testPreviewGrid();
    void testCancelPreview();
    void testPreviewWithoutModelIsRefused();
    void testMainWindowShowsThePage();

private:
    QTemporaryDir m_dir;
    QString m_a;
    QString m_b;
    QString m_wide;
};

void TestMergePage::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("HypernetStudioTest"));
    QCoreApplication::setApplicationName(QStringLiteral("TestMergePage"));
    QVERIFY(m_dir.isValid());
    m_a = writeHypernetwork(m_dir.filePath(QStringLiteral("a.pt")), {1, 2, 1}, 1);
    m_b = writeHypernetwork(m_dir.filePath(QStringLiteral("b.pt")), {1, 2, 1}, 2);
    m_wide = writeHypernetwork(m_dir.filePath(QStringLiteral("wide.pt")), {1, 4, 1}, 3);
}

void TestMergePage::init()
{
    QSettings().clear();
}

void TestMergePage::cleanupTestCase()
{
    QSettings().clear();
}

void TestMergePage::testStructureCheck()
{
    MergePage page;
    page.show();
    auto* structure = child<QLabel>(page, QStringLiteral("structureLabel"));
    auto* save = child<QPushButton>(page, QStringLiteral("saveButton"));
    QVERIFY(structure && save);
    QVERIFY(!save->isEnabled());

    page.addInputs({m_a, m_wide});
    QCOMPARE(child<QLabel>(page, QStringLiteral("inputName1"))->text(), QStringLiteral("wide.pt"));
    QTRY_VERIFY_WITH_TIMEOUT(!page.isChecking(), kTimeout);
    const QString reason =
        QStringLiteral("'wide.pt' has layer structure 1, 4, 1 where 'a.pt' has 1, 2, 1");
    QVERIFY2(page.incompatibility().startsWith(reason), qPrintable(page.incompatibility()));
    QCOMPARE(structure->text(), page.incompatibility());
    QVERIFY(isRed(*structure));
    QVERIFY(!save->isEnabled());

    // Remove the odd one with its row's button, then add a file that fits.
    QTest::mouseClick(child<QToolButton>(page, QStringLiteral("removeInput1")), Qt::LeftButton);
    QCOMPARE(page.inputs().size(), size_t(1));
    QVERIFY(page.incompatibility().isEmpty());
    QVERIFY(!isRed(*structure));
    QVERIFY(!save->isEnabled()); // one input is not a merge
    QVERIFY(page.findChild<QToolButton*>(QStringLiteral("removeInput1")) == nullptr);

    page.addInputs({m_b});
    QTRY_VERIFY_WITH_TIMEOUT(!page.isChecking(), kTimeout);
    QVERIFY(page.incompatibility().isEmpty());
    QVERIFY2(structure->text().startsWith(QStringLiteral("Same structure: sizes 32, 64")),
             qPrintable(structure->text()));
    QVERIFY(page.canMerge());
    QVERIFY(save->isEnabled());
}

void TestMergePage::testWeightWidgets()
{
    MergePage page;
    page.show();
    page.addInputs({m_a, m_b});
    // Added inputs share the weight equally.
    QCOMPARE(page.inputs()[0].weight, 0.5);
    QCOMPARE(page.inputs()[1].weight, 0.5);
    auto* slider0 = child<QSlider>(page, QStringLiteral("weightSlider0"));
    auto* spin0 = child<QDoubleSpinBox>(page, QStringLiteral("weightSpin0"));
    auto* spin1 = child<QDoubleSpinBox>(page, QStringLiteral("weightSpin1"));
    auto* sum = child<QLabel>(page, QStringLiteral("weightSumLabel"));
    QVERIFY(slider0 && spin0 && spin1 && sum);
    QCOMPARE(slider0->value(), 50);
    QCOMPARE(sum->text(), QStringLiteral("The weights sum to 1."));

    spin0->setValue(0.25);
    QCOMPARE(page.inputs()[0].weight, 0.25);
    QCOMPARE(slider0->value(), 25);
    QVERIFY(sum->text().contains(QStringLiteral("sum to 0.75, not 1")));

    slider0->setValue(150); // as a drag would
    QCOMPARE(page.inputs()[0].weight, 1.5);
    QCOMPARE(spin0->value(), 1.5);

    // The box takes values beyond the slider, negative ones too.
    spin1->setValue(-0.5);
    QCOMPARE(page.inputs()[1].weight, -0.5);
    QCOMPARE(sum->text(), QStringLiteral("The weights sum to 1."));

    QTest::mouseClick(child<QPushButton>(page, QStringLiteral("equalWeightsButton")),
                      Qt::LeftButton);
    QCOMPARE(page.inputs()[0].weight, 0.5);
    QCOMPARE(spin1->value(), 0.5);
}

void TestMergePage::testSaveMerge()
{
    MergePage page;
    page.show();
    page.addInputs({m_a, m_b});
    child<QDoubleSpinBox>(page, QStringLiteral("weightSpin0"))->setValue(0.25);
    child<QSlider>(page, QStringLiteral("weightSlider1"))->setValue(75);
    child<QLineEdit>(page, QStringLiteral("nameEdit"))->setText(QStringLiteral("quarter mix"));
    QTRY_VERIFY_WITH_TIMEOUT(page.canMerge(), kTimeout);

    const QString output = m_dir.filePath(QStringLiteral("saved.pt"));
    page.saveMerge(output);
    QTRY_COMPARE_WITH_TIMEOUT(page.mergedSavePath(), output, kTimeout);
    QVERIFY(!page.isSaving());
    QVERIFY(child<QLabel>(page, QStringLiteral("statusLabel"))
                ->text()
                .contains(QStringLiteral("Saved the merge")));

    const Hypernetwork merged = loadHypernetwork(output);
    QCOMPARE(merged.config().name, QStringLiteral("quarter mix"));
    const std::vector<at::Tensor> a = loadHypernetwork(m_a).parameters();
    const std::vector<at::Tensor> b = loadHypernetwork(m_b).parameters();
    const std::vector<at::Tensor> saved = merged.parameters();
    QCOMPARE(saved.size(), a.size());
    for (size_t i = 0; i < saved.size(); ++i) {
        STUDIO_COMPARE_TENSORS(saved[i].detach(),
                               a[i].detach().to(at::kDouble) * 0.25 +
                                   b[i].detach().to(at::kDouble) * 0.75,
                               1e-7, 1e-6);
    }

    // Incompatible inputs are not saved; the reason is the status.
    page.setInputs({{m_a, 0.5}, {m_wide, 0.5}});
    QTRY_VERIFY_WITH_TIMEOUT(!page.isChecking(), kTimeout);
    const QString refused = m_dir.filePath(QStringLiteral("refused.pt"));
    page.saveMerge(refused);
    QVERIFY(!page.isSaving());
    QVERIFY(!QFileInfo::exists(refused));
    QCOMPARE(child<QLabel>(page, QStringLiteral("statusLabel"))->text(), page.incompatibility());
}

void TestMergePage::testUnreadableInput()
{
    const QString broken = m_dir.filePath(QStringLiteral("broken.pt"));
    QFile file(broken);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write("this is not a torch file");
    file.close();

    MergePage page;
    page.show();
    page.addInputs({m_a, broken});
    QTRY_VERIFY_WITH_TIMEOUT(!page.isChecking(), kTimeout);
    QVERIFY2(page.incompatibility().contains(QStringLiteral("broken.pt")),
             qPrintable(page.incompatibility()));
    QVERIFY(isRed(*child<QLabel>(page, QStringLiteral("structureLabel"))));
    QVERIFY(!page.canMerge());
}

void TestMergePage::testModelDescription()
{
    MergePage page;
    page.show();
    page.setModel(test::referencePath(QStringLiteral("full/tiny_sd1.safetensors")));
    QTRY_VERIFY_WITH_TIMEOUT(page.modelDescription().startsWith(QStringLiteral("SD1.x")), kTimeout);
    QCOMPARE(child<QLabel>(page, QStringLiteral("modelLabel"))->text(),
             QStringLiteral("SD1.x, eps prediction, 4-channel UNet with context 32; "
                            "configuration from tiny_sd1.yaml"));

    page.setModel(m_dir.filePath(QStringLiteral("missing.safetensors")));
    QTRY_VERIFY_WITH_TIMEOUT(page.modelDescription().contains(QStringLiteral("is not a file")),
                             kTimeout);
    QVERIFY(isRed(*child<QLabel>(page, QStringLiteral("modelLabel"))));
}

void TestMergePage::testPreviewGrid()
{
    // The vocabulary comes from the settings, as a user would set it once.
    studio::ui::Settings settings;
    settings.tokenizerPath =
        test::referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz"));
    settings.save();

    MergePage page;
    page.show();
    QVERIFY(QTest::qWaitForWindowExposed(&page));
    page.addInputs({m_a, m_b});
    child<QDoubleSpinBox>(page, QStringLiteral("weightSpin0"))->setValue(0.7);
    child<QDoubleSpinBox>(page, QStringLiteral("weightSpin1"))->setValue(0.3);
    page.setModel(test::referencePath(QStringLiteral("full/tiny_sd1.safetensors")));
    child<QLineEdit>(page, QStringLiteral("promptEdit"))->setText(QStringLiteral("a red sofa"));
    child<QSpinBox>(page, QStringLiteral("seedSpin"))->setValue(5);
    child<QSpinBox>(page, QStringLiteral("stepsSpin"))->setValue(3);
    QTRY_VERIFY_WITH_TIMEOUT(page.canMerge(), kTimeout);

    auto* preview = child<QPushButton>(page, QStringLiteral("previewButton"));
    auto* cancel = child<QPushButton>(page, QStringLiteral("cancelButton"));
    QVERIFY(preview->isEnabled());
    QVERIFY(!cancel->isEnabled());
    QTest::mouseClick(preview, Qt::LeftButton);
    // The click returns at once; the work runs elsewhere.
    QVERIFY(page.isPreviewRunning());
    QVERIFY(!preview->isEnabled());
    QVERIFY(cancel->isEnabled());
    QCOMPARE(page.tileCount(), 5);
    QCOMPARE(page.previewCaption(0), QStringLiteral("No hypernetwork"));
    QCOMPARE(page.previewCaption(1), QStringLiteral("a alone"));
    QCOMPARE(page.previewCaption(2), QStringLiteral("b alone"));
    QCOMPARE(page.previewCaption(3), QStringLiteral("Merge (a 0.7 + b 0.3)"));
    QCOMPARE(page.previewCaption(4), QStringLiteral("Stacked (a 0.7, b 0.3)"));

    QTRY_VERIFY_WITH_TIMEOUT(!page.isPreviewRunning(), kTimeout);
    QCOMPARE(page.previewCount(), 5);
    QVERIFY(preview->isEnabled());
    for (int i = 0; i < 5; ++i) {
        QCOMPARE(page.previewImage(i).size(), QSize(32, 32)); // the model's native size
        QVERIFY2(page.previewParameters(i).contains(QStringLiteral("Seed: 5,")),
                 qPrintable(page.previewParameters(i)));
        const auto* label = child<QLabel>(page, QStringLiteral("previewImage%1").arg(i));
        QVERIFY(label != nullptr);
        QVERIFY(!label->pixmap().isNull());
    }
    QVERIFY(!page.previewParameters(0).contains(QStringLiteral("Hypernet:")));
    QVERIFY(page.previewParameters(1).contains(QStringLiteral("Hypernet: a,")));
    QVERIFY(page.previewParameters(3).contains(QStringLiteral("Hypernet: merge,")));
    QVERIFY(page.previewParameters(4).contains(
        QStringLiteral("Hypernet: \"a, b\", Hypernet strength: \"0.7, 0.3\"")));
    // One seed, different hypernetworks: different images.
    QVERIFY(page.previewImage(0) != page.previewImage(1));
    QVERIFY(page.previewImage(1) != page.previewImage(2));
    QVERIFY(page.previewImage(3) != page.previewImage(4));

    // Clicking a tile enlarges it.
    QTest::mouseClick(child<QLabel>(page, QStringLiteral("previewImage3")), Qt::LeftButton);
    auto* dialog = page.findChild<QDialog*>(QStringLiteral("enlargedPreview"));
    QVERIFY(dialog != nullptr);
    QVERIFY(dialog->isVisible());
    QCOMPARE(dialog->windowTitle(), page.previewCaption(3));
    QVERIFY(child<QLabel>(*dialog, QStringLiteral("enlargedImage"))->pixmap().width() >= 512);
    dialog->close();

    // The same seed again gives the same grid; the model stays loaded in between.
    const QImage merged = page.previewImage(3);
    QTest::mouseClick(preview, Qt::LeftButton);
    QCOMPARE(page.previewCount(), 0);
    QTRY_VERIFY_WITH_TIMEOUT(!page.isPreviewRunning(), kTimeout);
    QCOMPARE(page.previewCount(), 5);
    QCOMPARE(page.previewImage(3), merged);
}

void TestMergePage::testCancelPreview()
{
    MergePage page;
    page.show();
    page.addInputs({m_a, m_b});
    page.setModel(test::referencePath(QStringLiteral("full/tiny_sd1.safetensors")),
                  test::referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz")));
    child<QSpinBox>(page, QStringLiteral("stepsSpin"))->setValue(500);
    QTRY_VERIFY_WITH_TIMEOUT(page.canMerge(), kTimeout);

    page.startPreview();
    QVERIFY(page.isPreviewRunning());
    QTest::mouseClick(child<QPushButton>(page, QStringLiteral("cancelButton")), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(!page.isPreviewRunning(), kTimeout);
    auto* status = child<QLabel>(page, QStringLiteral("statusLabel"));
    QCOMPARE(status->text(), QStringLiteral("Preview cancelled."));
    QVERIFY(!isRed(*status));
    QVERIFY(page.previewCount() < page.tileCount());
    QVERIFY(child<QPushButton>(page, QStringLiteral("previewButton"))->isEnabled());
}

void TestMergePage::testPreviewWithoutModelIsRefused()
{
    MergePage page;
    page.show();
    page.addInputs({m_a});
    QVERIFY(!child<QPushButton>(page, QStringLiteral("previewButton"))->isEnabled());
    page.startPreview();
    QVERIFY(!page.isPreviewRunning());
    QCOMPARE(child<QLabel>(page, QStringLiteral("statusLabel"))->text(),
             QStringLiteral("Choose the model checkpoint to preview with."));

    // A model that does not load fails the preview with the loader's message.
    page.setModel(m_a);
    page.startPreview();
    QTRY_VERIFY_WITH_TIMEOUT(!page.isPreviewRunning(), kTimeout);
    auto* status = child<QLabel>(page, QStringLiteral("statusLabel"));
    QVERIFY2(status->text().contains(QStringLiteral("a.pt")), qPrintable(status->text()));
    QVERIFY(isRed(*status));
    QCOMPARE(page.previewCount(), 0);
}

void TestMergePage::testMainWindowShowsThePage()
{
    studio::ui::MainWindow window;
    QVERIFY(window.mergePage() != nullptr);
    QVERIFY(window.mergePage()->findChild<QPushButton*>(QStringLiteral("previewButton")));
}

QTEST_MAIN(TestMergePage)
#include "TestMergePage.moc"
