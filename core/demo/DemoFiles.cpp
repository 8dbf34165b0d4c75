#include "core/demo/DemoFiles.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>

namespace studio::demo {

namespace {

bool holdsDemo(const QString& folder)
{
    return !folder.isEmpty() &&
           QFileInfo(QDir(folder).filePath(QLatin1String(kDemoRunFileName))).isFile();
}

QStringList candidateFolders()
{
    QStringList folders;
    const QString fromEnvironment = qEnvironmentVariable("HNSTUDIO_DEMO_DIR");
    if (!fromEnvironment.isEmpty()) {
        folders << fromEnvironment;
    }
    // applicationDirPath needs a QCoreApplication; without one only the other places count.
    if (QCoreApplication::instance() != nullptr) {
        folders << QDir(QCoreApplication::applicationDirPath())
                       .filePath(QStringLiteral("../share/hypernet-studio/demo"));
    }
#ifdef HNSTUDIO_SOURCE_DEMO_DIR
    folders << QStringLiteral(HNSTUDIO_SOURCE_DEMO_DIR);
#endif
    return folders;
}

} // namespace

QString locateDemoFolder()
{
    for (const QString& folder : candidateFolders()) {
        if (holdsDemo(folder)) {
            return QDir::cleanPath(QFileInfo(folder).absoluteFilePath());
        }
    }
    return {};
}

RunConfig demoRunConfig(const QString& demoFolder, const QString& outputRoot)
{
    RunConfig config = readRunConfig(QDir(demoFolder).filePath(QLatin1String(kDemoRunFileName)));
    config.output.folder = QDir::cleanPath(QDir(outputRoot).filePath(QStringLiteral("demo-run")));
    return config;
}

} // namespace studio::demo
