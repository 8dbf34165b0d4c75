// hnstudio: with no arguments the studio opens; with a subcommand the engine runs headless.

#include "app/cli/Commands.h"
#include "core/CpuRuntime.h"

#ifdef HNSTUDIO_WITH_UI
#include "ui/MainWindow.h"
#include "ui/Settings.h"

#include <QApplication>
#endif

#include <QCoreApplication>

namespace {

int runStudio(int argc, char** argv)
{
#ifdef HNSTUDIO_WITH_UI
    QApplication app(argc, argv);
    QApplication::setApplicationName(QStringLiteral("Hypernet Studio"));
    QApplication::setOrganizationName(QStringLiteral("HypernetStudio"));
    studio::ui::applyEngineSettings(studio::ui::Settings::load());
    studio::ui::MainWindow window;
    window.show();
    return QApplication::exec();
#else
    QCoreApplication app(argc, argv);
    return studio::cli::runCli(QCoreApplication::arguments());
#endif
}

} // namespace

int main(int argc, char** argv)
{
    studio::configureCpuRuntime(argv);
    if (argc <= 1) {
        return runStudio(argc, argv);
    }
    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("hnstudio"));
    return studio::cli::runCli(QCoreApplication::arguments());
}
