#include "ui/MainWindow.h"

#include "core/EngineInfo.h"

#include <QLabel>
#include <QStatusBar>
#include <QVBoxLayout>

namespace studio::ui {

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent)
{
    setupUi();
}

void MainWindow::setupUi()
{
    const EngineInfo info = engineInfo();
    setWindowTitle(tr("Hypernet Studio %1").arg(info.studioVersion));
    resize(1100, 720);

    auto* central = new QWidget(this);
    auto* layout = new QVBoxLayout(central);
    auto* title = new QLabel(tr("<h1>Hypernet Studio</h1>"), central);
    title->setObjectName(QStringLiteral("titleLabel"));
    m_engineLabel = new QLabel(tr("Engine: LibTorch %1 on %2 (%3 CPU threads)")
                                   .arg(info.torchVersion, info.devices.join(QStringLiteral(", ")))
                                   .arg(info.cpuThreads),
                               central);
    m_engineLabel->setObjectName(QStringLiteral("engineLabel"));
    layout->addWidget(title);
    layout->addWidget(m_engineLabel);
    layout->addStretch();
    setCentralWidget(central);

    statusBar()->showMessage(tr("Ready"));
}

QString MainWindow::engineSummary() const
{
    return m_engineLabel->text();
}

} // namespace studio::ui
