#pragma once

// The studio's main window.

#include <QMainWindow>

class QLabel;

namespace studio::ui {

class MainWindow : public QMainWindow
{
    Q_OBJECT

public:
    explicit MainWindow(QWidget* parent = nullptr);

    // The engine line shown in the status area ("LibTorch 1.13.0 on cpu"), for tests.
    QString engineSummary() const;

private:
    void setupUi();

    QLabel* m_engineLabel = nullptr;
};

} // namespace studio::ui
