// Settings: defaults, a round trip through QSettings, damaged values, the dialog editing and
// saving them (and applying the CPU thread count), and the main window's File menu. Runs in
// QStandardPaths' test mode under its own organisation, so the user's settings are untouched.

#include "ui/MainWindow.h"
#include "ui/Settings.h"
#include "ui/SettingsDialog.h"

#include "core/EngineInfo.h"

#include <QAction>
#include <QApplication>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QLabel>
#include <QLineEdit>
#include <QObject>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTest>
#include <QTimer>

using studio::ui::MainWindow;
using studio::ui::Settings;
using studio::ui::SettingsDialog;

namespace {

template <typename T> T* child(const QWidget& parent, const char* name)
{
    T* widget = parent.findChild<T*>(QString::fromLatin1(name));
    if (!widget) {
        qFatal("no widget named %s", name);
    }
    return widget;
}

void typeInto(QLineEdit* edit, const QString& text)
{
    edit->selectAll();
    QTest::keyClick(edit, Qt::Key_Delete);
    QTest::keyClicks(edit, text);
}

QPushButton* okButton(const SettingsDialog& dialog)
{
    return child<QDialogButtonBox>(dialog, "settingsButtons")->button(QDialogButtonBox::Ok);
}

} // namespace

class TestSettings : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanupTestCase();

    void testDefaultsWhenNothingIsSaved();
    void testValuesRoundTripThroughQSettings();
    void testDamagedValuesFallBackToDefaults();
    void testProblemsNameTheFix();
    void testDialogEditsSavesAndApplies();
    void testDialogRefusesFp16OnTheCpu();
    void testUnavailableDeviceFallsBackOpenly();
    void testMainWindowFileMenuOpensSettings();

private:
    int m_startupThreads = 0;
};

void TestSettings::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    QCoreApplication::setOrganizationName(QStringLiteral("HypernetStudioTest"));
    QCoreApplication::setApplicationName(QStringLiteral("TestSettings"));
    m_startupThreads = studio::engineInfo().cpuThreads;
    // The store the tests write must be the test-mode one, never the user's.
    QVERIFY2(QSettings().fileName().contains(QStringLiteral(".qttest")),
             qPrintable(QSettings().fileName()));
}

void TestSettings::init()
{
    QSettings().clear();
}

void TestSettings::cleanupTestCase()
{
    QSettings().clear();
    studio::setCpuThreads(0);
}

void TestSettings::testDefaultsWhenNothingIsSaved()
{
    const Settings settings = Settings::load();
    QVERIFY(settings == Settings());
    QCOMPARE(settings.device, QStringLiteral("cpu"));
    QCOMPARE(settings.precision, QStringLiteral("fp32"));
    QCOMPARE(settings.threads, 0);
    QVERIFY(settings.tokenizerPath.isEmpty());
    QVERIFY(settings.outputFolder.endsWith(QStringLiteral("Hypernet Studio")));
    QVERIFY(settings.problem().isEmpty());
}

void TestSettings::testValuesRoundTripThroughQSettings()
{
    Settings settings;
    settings.device = QStringLiteral("cuda:1");
    settings.precision = QStringLiteral("bf16");
    settings.threads = 3;
    settings.tokenizerPath = QStringLiteral("/models/tokenizer/vocab.json");
    settings.outputFolder = QStringLiteral("/data/hypernetworks");
    settings.save();

    // Written where a later launch reads it, not kept in memory.
    const QSettings store;
    QCOMPARE(store.value(QStringLiteral("engine/precision")).toString(), QStringLiteral("bf16"));
    QCOMPARE(store.value(QStringLiteral("paths/output")).toString(), settings.outputFolder);

    const Settings loaded = Settings::load();
    QVERIFY(loaded == settings);
    QCOMPARE(loaded.device, QStringLiteral("cuda:1"));
    QCOMPARE(loaded.threads, 3);
    QCOMPARE(loaded.tokenizerPath, settings.tokenizerPath);
}

void TestSettings::testDamagedValuesFallBackToDefaults()
{
    QSettings store;
    store.setValue(QStringLiteral("engine/device"), QStringLiteral("gpu please"));
    store.setValue(QStringLiteral("engine/precision"), QStringLiteral("fp64"));
    store.setValue(QStringLiteral("engine/threads"), QStringLiteral("many"));
    store.setValue(QStringLiteral("paths/output"), QStringLiteral("  "));
    store.sync();

    const Settings loaded = Settings::load();
    QVERIFY(loaded == Settings());
}

void TestSettings::testProblemsNameTheFix()
{
    Settings settings;
    settings.precision = QStringLiteral("fp16");
    QVERIFY2(settings.problem().contains(QStringLiteral("fp16 needs a CUDA device")),
             qPrintable(settings.problem()));
    settings.device = QStringLiteral("cuda:0");
    QVERIFY(settings.problem().isEmpty());

    settings.threads = -2;
    QVERIFY(settings.problem().contains(QStringLiteral("threads")));
    settings.threads = 0;
    settings.outputFolder.clear();
    QVERIFY(settings.problem().contains(QStringLiteral("output folder")));
}

void TestSettings::testDialogEditsSavesAndApplies()
{
    SettingsDialog dialog(Settings::load());
    dialog.show();
    QVERIFY(QTest::qWaitForWindowExposed(&dialog));

    auto* precision = child<QComboBox>(dialog, "precisionCombo");
    precision->setCurrentIndex(precision->findText(QStringLiteral("bf16")));
    auto* threads = child<QSpinBox>(dialog, "threadsSpin");
    threads->selectAll();
    QTest::keyClicks(threads, QStringLiteral("2"));
    QCOMPARE(threads->value(), 2);
    typeInto(child<QLineEdit>(dialog, "tokenizerEdit"), QStringLiteral("/opt/clip/vocab.json"));
    typeInto(child<QLineEdit>(dialog, "outputFolderEdit"), QStringLiteral("/tmp/hn-out"));

    QVERIFY(okButton(dialog)->isEnabled());
    QTest::mouseClick(okButton(dialog), Qt::LeftButton);
    QCOMPARE(dialog.result(), int(QDialog::Accepted));

    const Settings saved = Settings::load();
    QCOMPARE(saved.device, QStringLiteral("cpu"));
    QCOMPARE(saved.precision, QStringLiteral("bf16"));
    QCOMPARE(saved.threads, 2);
    QCOMPARE(saved.tokenizerPath, QStringLiteral("/opt/clip/vocab.json"));
    QCOMPARE(saved.outputFolder, QStringLiteral("/tmp/hn-out"));
    QCOMPARE(studio::engineInfo().cpuThreads, 2); // applied to the running engine

    // 0 ("Default") brings back the count the process started with.
    studio::setCpuThreads(0);
    QCOMPARE(studio::engineInfo().cpuThreads, m_startupThreads);
}

void TestSettings::testDialogRefusesFp16OnTheCpu()
{
    SettingsDialog dialog(Settings::load());
    dialog.show();
    QVERIFY(QTest::qWaitForWindowExposed(&dialog));
    auto* problem = child<QLabel>(dialog, "settingsProblemLabel");
    QVERIFY(!problem->isVisible());

    auto* precision = child<QComboBox>(dialog, "precisionCombo");
    precision->setCurrentIndex(precision->findText(QStringLiteral("fp16")));
    QVERIFY(problem->isVisible());
    QVERIFY2(problem->text().contains(QStringLiteral("fp16 needs a CUDA device")),
             qPrintable(problem->text()));
    QVERIFY(!okButton(dialog)->isEnabled());

    // Enter cannot get around the disabled button either.
    QTest::keyClick(&dialog, Qt::Key_Return);
    QVERIFY(dialog.isVisible());
    dialog.reject();
    QCOMPARE(Settings::load().precision, QStringLiteral("fp32"));
}

void TestSettings::testUnavailableDeviceFallsBackOpenly()
{
    Settings settings;
    settings.device = QStringLiteral("cuda:97");
    SettingsDialog dialog(settings);
    dialog.show();
    QVERIFY(QTest::qWaitForWindowExposed(&dialog));
    QCOMPARE(child<QComboBox>(dialog, "deviceCombo")->currentText(), QStringLiteral("cpu"));
    auto* note = child<QLabel>(dialog, "deviceNote");
    QVERIFY(note->isVisible());
    QVERIFY2(note->text().contains(QStringLiteral("cuda:97")), qPrintable(note->text()));
    QCOMPARE(child<QComboBox>(dialog, "deviceCombo")->count(),
             static_cast<int>(studio::engineInfo().devices.size()));
}

void TestSettings::testMainWindowFileMenuOpensSettings()
{
    MainWindow window;
    window.show();
    QVERIFY(QTest::qWaitForWindowExposed(&window));
    auto* settingsAction = window.findChild<QAction*>(QStringLiteral("settingsAction"));
    auto* quitAction = window.findChild<QAction*>(QStringLiteral("quitAction"));
    QVERIFY(settingsAction && quitAction);
    QVERIFY(settingsAction->text().contains(QStringLiteral("Settings")));

    // The dialog is modal: look for it from the event loop it runs, then close it.
    bool opened = false;
    QTimer poll;
    connect(&poll, &QTimer::timeout, this, [&] {
        if (auto* dialog = qobject_cast<SettingsDialog*>(QApplication::activeModalWidget())) {
            opened = true;
            dialog->reject();
        }
    });
    poll.start(20);
    QTimer::singleShot(10000, &poll, [] {
        if (QWidget* modal = QApplication::activeModalWidget()) {
            modal->close();
        }
    });
    settingsAction->trigger();
    poll.stop();
    QVERIFY(opened);

    quitAction->trigger();
    QTRY_VERIFY(!window.isVisible());
}

QTEST_MAIN(TestSettings)
#include "TestSettings.moc"
