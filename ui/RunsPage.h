#pragma once

// Runs: finished (or running) run folders reopened with their plots and previews. A folder of
// runs is listed (by default the output folder of the settings); opening one plots its
// loss.csv (loss and the learning rate each step used, with the planned curve from its
// run.json), fills the gallery from images/ and shows run.json, which can be loaded into the
// Train page to train it again or to continue it.

#include <QString>
#include <QStringList>
#include <QWidget>

class QLabel;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;
class QPushButton;

namespace studio::ui {

class LearningRatePlot;
class LossPlot;
class PreviewGallery;

class RunsPage : public QWidget
{
    Q_OBJECT

public:
    explicit RunsPage(QWidget* parent = nullptr);

    // Lists the run folders directly inside `folder`, most recent first.
    void setRunsFolder(const QString& folder);
    QString runsFolder() const;
    QStringList listedRuns() const;

    // Reads a run folder in the background; runOpened() follows.
    void openRun(const QString& runFolder);
    QString openedRun() const { return m_openedRun; }
    QString runJsonText() const;
    QString statusText() const;

    LossPlot* lossPlot() const { return m_lossPlot; }
    LearningRatePlot* learningRatePlot() const { return m_learningRatePlot; }
    PreviewGallery* previewGallery() const { return m_gallery; }

Q_SIGNALS:
    void runOpened(const QString& runFolder);
    // "Load into Train": the run.json of the opened run.
    void loadRunRequested(const QString& runJsonPath);

private:
    struct RunContents;

    QWidget* buildRunList();
    QWidget* buildRunView();
    void chooseRunsFolder();
    void chooseRunFolder();
    void refreshList();
    void showRun(const QString& runFolder, const RunContents& contents);
    void setStatus(const QString& text, bool problem = false);

    QLineEdit* m_folderEdit = nullptr;
    QListWidget* m_runList = nullptr;
    QLabel* m_status = nullptr;
    LossPlot* m_lossPlot = nullptr;
    LearningRatePlot* m_learningRatePlot = nullptr;
    PreviewGallery* m_gallery = nullptr;
    QPlainTextEdit* m_runJson = nullptr;
    QPushButton* m_loadButton = nullptr;
    QString m_openedRun;
    quint64 m_request = 0;
};

} // namespace studio::ui
