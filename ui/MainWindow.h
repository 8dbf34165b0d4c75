#pragma once

// The studio's main window: one tab per page (Create, Train, Merge, Runs), the engine line in
// the status bar, and the window layout remembered between launches.

#include <QMainWindow>

class QLabel;
class QTabWidget;

namespace studio::ui {

class CreatePage;
class MergePage;
class RunsPage;
class TrainPage;

class MainWindow : public QMainWindow
{
    Q_OBJECT

public:
    explicit MainWindow(QWidget* parent = nullptr);

    // The engine line shown in the status area ("LibTorch 1.13.0 on cpu"), for tests.
    QString engineSummary() const;

    // Puts the built-in demo run (core/demo/DemoFiles.h) on the Train page, its output in the
    // settings' output folder. False, with the reason in the status bar, when no demo is
    // installed or a run is training.
    bool openDemoRun();

    CreatePage* createPage() const { return m_createPage; }
    TrainPage* trainPage() const { return m_trainPage; }
    MergePage* mergePage() const { return m_mergePage; }
    RunsPage* runsPage() const { return m_runsPage; }
    QTabWidget* tabs() const { return m_tabs; }

protected:
    // Stops a running training cleanly (its last step is saved) before the window goes.
    void closeEvent(QCloseEvent* event) override;

private:
    void setupUi();
    void connectPages();
    void setupMenus();
    void openSettings();
    void restoreLayout();
    void saveLayout() const;

    QTabWidget* m_tabs = nullptr;
    CreatePage* m_createPage = nullptr;
    TrainPage* m_trainPage = nullptr;
    MergePage* m_mergePage = nullptr;
    RunsPage* m_runsPage = nullptr;
    QLabel* m_engineLabel = nullptr;
};

} // namespace studio::ui
