// The Create page driven through its real widgets, offscreen: a hypernetwork made from the form
// is the one the form describes; every wrong input shows its message, marks its field and
// disables Create; the parameter count follows the structure; files are never replaced without
// confirmation and a failed write is a message, not a crash.

#include "ui/CreatePage.h"

#include "core/hypernetwork/Activation.h"
#include "core/hypernetwork/HypernetworkTools.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFile>
#include <QLabel>
#include <QLineEdit>
#include <QLocale>
#include <QObject>
#include <QPushButton>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>
#include <QToolButton>

using studio::HypernetworkConfig;
using studio::HypernetworkSummary;
using studio::ui::CreatePage;

namespace {

constexpr int kCreateTimeoutMs = 60000;

template <typename T> T* child(const QWidget& page, const char* name)
{
    T* widget = page.findChild<T*>(QString::fromLatin1(name));
    if (!widget) {
        qFatal("no widget named %s", name);
    }
    return widget;
}

// Replaces a line edit's text the way a user does: select everything, type over it.
void typeInto(QLineEdit* edit, const QString& text)
{
    edit->selectAll();
    QTest::keyClick(edit, Qt::Key_Delete);
    QTest::keyClicks(edit, text);
}

void toggle(QCheckBox* check)
{
    QTest::keyClick(check, Qt::Key_Space);
}

void choose(QComboBox* combo, const QString& text)
{
    const int index = combo->findText(text);
    QVERIFY2(index >= 0, qPrintable(text));
    combo->setCurrentIndex(index);
}

} // namespace

class TestCreatePage : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();

    void testActivationChoicesAreTheEngines();
    void testAdvancedIsFoldedByDefault();
    void testCreatesTheHypernetworkTheFormDescribes();
    void testInvalidInputIsMarkedAndBlocksCreate_data();
    void testInvalidInputIsMarkedAndBlocksCreate();
    void testMismatchedDropoutNamesTheProblem();
    void testEmptyNameIsAHintNotAnError();
    void testParameterCountFollowsTheStructure();
    void testExistingFileIsReplacedOnlyWhenConfirmed();
    void testWriteFailureIsShownNotThrown();

private:
    // A shown page whose output folder is the test's temporary folder.
    void makePage();
    HypernetworkSummary createThroughForm(const QString& name);

    std::unique_ptr<QTemporaryDir> m_dir;
    std::unique_ptr<CreatePage> m_page;
};

void TestCreatePage::initTestCase()
{
    // Settings::load() gives the default output folder; never read the user's own settings.
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("HypernetStudioTest"));
    QCoreApplication::setApplicationName(QStringLiteral("TestCreatePage"));
}

void TestCreatePage::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    makePage();
}

void TestCreatePage::cleanup()
{
    m_page.reset();
    m_dir.reset();
}

void TestCreatePage::makePage()
{
    m_page = std::make_unique<CreatePage>();
    m_page->show();
    QVERIFY(QTest::qWaitForWindowExposed(m_page.get()));
    typeInto(child<QLineEdit>(*m_page, "outputFolderEdit"), m_dir->path());
}

HypernetworkSummary TestCreatePage::createThroughForm(const QString& name)
{
    typeInto(child<QLineEdit>(*m_page, "nameEdit"), name);
    QSignalSpy created(m_page.get(), &CreatePage::hypernetworkCreated);
    auto* button = child<QPushButton>(*m_page, "createButton");
    if (!button->isEnabled()) {
        qWarning() << "Create is disabled:" << m_page->problem();
        return {};
    }
    QTest::mouseClick(button, Qt::LeftButton);
    if (!created.wait(kCreateTimeoutMs) && created.isEmpty()) {
        qWarning() << "not created:" << child<QLabel>(*m_page, "statusLabel")->text();
        return {};
    }
    return studio::summarizeHypernetworkFile(created.front().front().toString());
}

void TestCreatePage::testActivationChoicesAreTheEngines()
{
    auto* combo = child<QComboBox>(*m_page, "activationCombo");
    QStringList offered;
    for (int i = 0; i < combo->count(); ++i) {
        offered << combo->itemText(i);
    }
    QCOMPARE(offered, studio::activationNames());
    QCOMPARE(combo->currentText(), QStringLiteral("linear")); // the webui's default
}

void TestCreatePage::testAdvancedIsFoldedByDefault()
{
    auto* panel = child<QWidget>(*m_page, "advancedPanel");
    QVERIFY(!panel->isVisible());
    QTest::mouseClick(child<QToolButton>(*m_page, "advancedToggle"), Qt::LeftButton);
    QVERIFY(panel->isVisible());
    QVERIFY(child<QLineEdit>(*m_page, "initSeedEdit")->isVisible());
}

void TestCreatePage::testCreatesTheHypernetworkTheFormDescribes()
{
    toggle(child<QCheckBox>(*m_page, "sizeCheck1024"));
    toggle(child<QCheckBox>(*m_page, "sizeCheck640"));
    toggle(child<QCheckBox>(*m_page, "sizeCheck1280"));
    typeInto(child<QLineEdit>(*m_page, "layerStructureEdit"), QStringLiteral("1, 0.5, 1"));
    choose(child<QComboBox>(*m_page, "activationCombo"), QStringLiteral("relu"));
    choose(child<QComboBox>(*m_page, "weightInitCombo"), QStringLiteral("KaimingNormal"));
    toggle(child<QCheckBox>(*m_page, "layerNormCheck"));
    toggle(child<QCheckBox>(*m_page, "useDropoutCheck"));
    typeInto(child<QLineEdit>(*m_page, "dropoutStructureEdit"), QStringLiteral("0, 0.1, 0"));
    QTest::mouseClick(child<QToolButton>(*m_page, "advancedToggle"), Qt::LeftButton);
    typeInto(child<QLineEdit>(*m_page, "initSeedEdit"), QStringLiteral("42"));
    typeInto(child<QLineEdit>(*m_page, "optionalInfoEdit"), QStringLiteral("from the form"));

    const HypernetworkSummary summary = createThroughForm(QStringLiteral("watercolor"));
    QCOMPARE(summary.path, m_dir->filePath(QStringLiteral("watercolor.pt")));
    const HypernetworkConfig& config = summary.config;
    QCOMPARE(config.name, QStringLiteral("watercolor"));
    QCOMPARE(config.sizes, (std::vector<int>{768, 1024, 320}));
    QCOMPARE(config.layerStructure, (std::vector<double>{1, 0.5, 1}));
    QCOMPARE(config.activation.value_or(QString()), QStringLiteral("relu"));
    QVERIFY(config.layerNorm);
    QVERIFY(config.useDropout);
    QCOMPARE(config.dropoutStructure, (std::vector<double>{0, 0.1, 0}));
    QVERIFY(!config.activateOutput);
    QCOMPARE(config.weightInit, studio::WeightInit::KaimingNormal);
    QCOMPARE(config.optionalInfo.value_or(QString()), QStringLiteral("from the form"));
    QCOMPARE(config.step, int64_t{0});
    QCOMPARE(summary.parameterCount, m_page->parameterCount());

    const QString status = child<QLabel>(*m_page, "statusLabel")->text();
    QVERIFY2(status.contains(QStringLiteral("watercolor.pt")), qPrintable(status));
    QVERIFY2(status.contains(summary.shortHash), qPrintable(status));
}

void TestCreatePage::testInvalidInputIsMarkedAndBlocksCreate_data()
{
    QTest::addColumn<QString>("edit");
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("expected");
    QTest::addColumn<QString>("marked");

    QTest::addRow("layers not ending in 1") << "layerStructureEdit"
                                            << "2, 1"
                                            << "must start and end with 1"
                                            << "layerStructureEdit";
    QTest::addRow("layers not numbers") << "layerStructureEdit"
                                        << "1, x, 1"
                                        << "'x' is not a number"
                                        << "layerStructureEdit";
    QTest::addRow("zero-width layer") << "layerStructureEdit"
                                      << "1, 0.0001, 1"
                                      << "width 0"
                                      << "layerStructureEdit";
    QTest::addRow("dropout of 1.5") << "dropoutStructureEdit"
                                    << "0, 1.5, 0"
                                    << "probability 1.5"
                                    << "dropoutStructureEdit";
    QTest::addRow("dropout after the output") << "dropoutStructureEdit"
                                              << "0, 0.3, 0.3"
                                              << "must start and end with 0"
                                              << "dropoutStructureEdit";
    QTest::addRow("std not a number") << "normalStdEdit"
                                      << "big"
                                      << "normal init std: 'big' is not a number"
                                      << "normalStdEdit";
    QTest::addRow("negative std") << "normalStdEdit"
                                  << "-0.5"
                                  << "must be a number >= 0"
                                  << "normalStdEdit";
    QTest::addRow("seed not a number") << "initSeedEdit"
                                       << "abc"
                                       << "init seed: 'abc' is not a whole number"
                                       << "initSeedEdit";
    QTest::addRow("name without letters") << "nameEdit"
                                          << "///"
                                          << "has no letters or digits"
                                          << "nameEdit";
    QTest::addRow("no output folder") << "outputFolderEdit"
                                      << ""
                                      << "output folder: choose"
                                      << "outputFolderEdit";
}

void TestCreatePage::testInvalidInputIsMarkedAndBlocksCreate()
{
    QFETCH(QString, edit);
    QFETCH(QString, text);
    QFETCH(QString, expected);
    QFETCH(QString, marked);

    typeInto(child<QLineEdit>(*m_page, "nameEdit"), QStringLiteral("valid"));
    toggle(child<QCheckBox>(*m_page, "useDropoutCheck"));
    auto* createButton = child<QPushButton>(*m_page, "createButton");
    QVERIFY2(createButton->isEnabled(), qPrintable(m_page->problem()));

    typeInto(m_page->findChild<QLineEdit*>(edit), text);
    auto* problem = child<QLabel>(*m_page, "problemLabel");
    QVERIFY2(problem->text().contains(expected), qPrintable(problem->text()));
    QVERIFY(problem->isVisible());
    QVERIFY(!createButton->isEnabled());
    auto* field = m_page->findChild<QWidget*>(marked);
    QVERIFY(field->property("invalid").toBool());
    QVERIFY2(field->toolTip().contains(expected), qPrintable(field->toolTip()));
}

void TestCreatePage::testMismatchedDropoutNamesTheProblem()
{
    typeInto(child<QLineEdit>(*m_page, "nameEdit"), QStringLiteral("deep"));
    typeInto(child<QLineEdit>(*m_page, "layerStructureEdit"), QStringLiteral("1, 2, 2, 1"));
    toggle(child<QCheckBox>(*m_page, "useDropoutCheck"));
    auto* dropout = child<QLineEdit>(*m_page, "dropoutStructureEdit");
    QVERIFY(dropout->isEnabled());
    typeInto(dropout, QStringLiteral("0, 0.3, 0"));

    const QString message = child<QLabel>(*m_page, "problemLabel")->text();
    QVERIFY2(message.contains(QStringLiteral("dropout structure '0, 0.3, 0' has 3 entries")),
             qPrintable(message));
    QVERIFY2(message.contains(QStringLiteral("layer structure '1, 2, 2, 1' has 4")),
             qPrintable(message));
    QVERIFY(!child<QPushButton>(*m_page, "createButton")->isEnabled());
    QVERIFY(dropout->property("invalid").toBool());
    QVERIFY(dropout->toolTip().contains(QStringLiteral("has 3 entries")));
    QVERIFY(!child<QLineEdit>(*m_page, "layerStructureEdit")->property("invalid").toBool());
    auto* count = child<QLabel>(*m_page, "parameterCountLabel");
    QCOMPARE(count->text(), QStringLiteral("– parameters"));

    // Fixing it clears the mark and the message, and Create comes back.
    typeInto(dropout, QStringLiteral("0, 0.3, 0.3, 0"));
    QVERIFY(m_page->problem().isEmpty());
    QVERIFY(!child<QLabel>(*m_page, "problemLabel")->isVisible());
    QVERIFY(!dropout->property("invalid").toBool());
    QVERIFY(!dropout->toolTip().contains(QStringLiteral("has 3 entries")));
    QVERIFY(child<QPushButton>(*m_page, "createButton")->isEnabled());

    // Without dropout the list is not used, so it cannot be wrong.
    typeInto(dropout, QStringLiteral("0, 0.3, 0"));
    QVERIFY(!m_page->problem().isEmpty());
    toggle(child<QCheckBox>(*m_page, "useDropoutCheck"));
    QVERIFY2(m_page->problem().isEmpty(), qPrintable(m_page->problem()));
    QVERIFY(!dropout->isEnabled());
}

void TestCreatePage::testEmptyNameIsAHintNotAnError()
{
    auto* name = child<QLineEdit>(*m_page, "nameEdit");
    QVERIFY(name->text().isEmpty());
    QVERIFY(!child<QPushButton>(*m_page, "createButton")->isEnabled());
    QVERIFY(m_page->problem().contains(QStringLiteral("name")));
    QVERIFY(!name->property("invalid").toBool());

    typeInto(name, QStringLiteral("a/b: c"));
    QCOMPARE(m_page->outputPath(), m_dir->filePath(QStringLiteral("ab c.pt")));
    QVERIFY(child<QPushButton>(*m_page, "createButton")->isEnabled());
}

void TestCreatePage::testParameterCountFollowsTheStructure()
{
    auto* label = child<QLabel>(*m_page, "parameterCountLabel");
    auto* fileSize = child<QLabel>(*m_page, "fileSizeLabel");
    const auto expectedLabel = [](const HypernetworkConfig& config) {
        return QStringLiteral("%1 parameters")
            .arg(QLocale().toString(qlonglong{studio::countParameters(config)}));
    };

    HypernetworkConfig config; // the form starts at the webui's defaults
    QCOMPARE(label->text(), expectedLabel(config));
    QVERIFY(!fileSize->text().isEmpty());

    auto* layers = child<QLineEdit>(*m_page, "layerStructureEdit");
    typeInto(layers, QStringLiteral("1, 4, 1"));
    config.layerStructure = {1, 4, 1};
    QCOMPARE(label->text(), expectedLabel(config));
    QCOMPARE(m_page->parameterCount(), studio::countParameters(config));

    toggle(child<QCheckBox>(*m_page, "layerNormCheck"));
    config.layerNorm = true;
    QCOMPARE(label->text(), expectedLabel(config));

    toggle(child<QCheckBox>(*m_page, "sizeCheck1280"));
    config.sizes = {768, 320, 640};
    QCOMPARE(label->text(), expectedLabel(config));

    // While the structure cannot be read there is no count, rather than a stale one.
    typeInto(layers, QStringLiteral("1, 4,"));
    QCOMPARE(label->text(), QStringLiteral("– parameters"));
    QVERIFY(fileSize->text().isEmpty());
    QCOMPARE(m_page->parameterCount(), int64_t{-1});
}

void TestCreatePage::testExistingFileIsReplacedOnlyWhenConfirmed()
{
    QStringList asked;
    bool answer = false;
    m_page->setOverwriteConfirmation([&](const QString& path) {
        asked << path;
        return answer;
    });
    typeInto(child<QLineEdit>(*m_page, "layerStructureEdit"), QStringLiteral("1, 0.1, 1"));
    const HypernetworkSummary first = createThroughForm(QStringLiteral("twice"));
    QVERIFY(!first.shortHash.isEmpty());
    QVERIFY(asked.isEmpty());

    // Declined: nothing is written and nothing is announced.
    QSignalSpy created(m_page.get(), &CreatePage::hypernetworkCreated);
    QTest::mouseClick(child<QPushButton>(*m_page, "createButton"), Qt::LeftButton);
    QCOMPARE(asked, QStringList{first.path});
    QVERIFY(!m_page->isCreating());
    QCOMPARE(studio::summarizeHypernetworkFile(first.path).shortHash, first.shortHash);
    QVERIFY(child<QLabel>(*m_page, "statusLabel")->text().contains(QStringLiteral("Kept")));
    QVERIFY(created.isEmpty());

    // Confirmed: a new random start replaces the file.
    answer = true;
    QTest::mouseClick(child<QPushButton>(*m_page, "createButton"), Qt::LeftButton);
    QVERIFY(created.wait(kCreateTimeoutMs) || !created.isEmpty());
    QCOMPARE(asked.size(), 2);
    QVERIFY(studio::summarizeHypernetworkFile(first.path).shortHash != first.shortHash);
}

void TestCreatePage::testWriteFailureIsShownNotThrown()
{
    // A folder that cannot exist: its parent is a regular file.
    const QString blocker = m_dir->filePath(QStringLiteral("blocker"));
    QFile file(blocker);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.close();
    typeInto(child<QLineEdit>(*m_page, "outputFolderEdit"), blocker + QStringLiteral("/inside"));
    typeInto(child<QLineEdit>(*m_page, "nameEdit"), QStringLiteral("nowhere"));

    QSignalSpy created(m_page.get(), &CreatePage::hypernetworkCreated);
    auto* button = child<QPushButton>(*m_page, "createButton");
    QTest::mouseClick(button, Qt::LeftButton);
    QTRY_VERIFY(!m_page->isCreating());
    const QString status = child<QLabel>(*m_page, "statusLabel")->text();
    QVERIFY2(status.contains(QStringLiteral("cannot create the output folder")),
             qPrintable(status));
    QVERIFY2(status.contains(QStringLiteral("inside")), qPrintable(status));
    QVERIFY(created.isEmpty());
    QVERIFY(button->isEnabled()); // the user can fix the folder and try again
}

QTEST_MAIN(TestCreatePage)
#include "TestCreatePage.moc"
