// The studio's main window opens offscreen and shows which engine it runs on.

#include "ui/MainWindow.h"

#include "core/EngineInfo.h"

#include <QLabel>
#include <QObject>
#include <QTest>

using studio::ui::MainWindow;

class TestMainWindow : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void testShowsEngineVersionAndDevice();
};

void TestMainWindow::testShowsEngineVersionAndDevice()
{
    MainWindow window;
    window.show();
    QVERIFY(QTest::qWaitForWindowExposed(&window));

    const studio::EngineInfo info = studio::engineInfo();
    QVERIFY(window.windowTitle().contains(info.studioVersion));
    const auto* label = window.findChild<QLabel*>(QStringLiteral("engineLabel"));
    QVERIFY(label != nullptr);
    QVERIFY(label->isVisible());
    QVERIFY(label->text().contains(info.torchVersion));
    QVERIFY(label->text().contains(QStringLiteral("cpu")));
    QCOMPARE(window.engineSummary(), label->text());
}

QTEST_MAIN(TestMainWindow)
#include "TestMainWindow.moc"
