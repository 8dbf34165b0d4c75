#pragma once

// Merge: weighted merges and stacks compared on one seed (studio.md section 6). Pick
// hypernetworks and their weights, see at once whether their structures line up (the reason in
// red when they do not), preview a grid on one prompt and seed (no hypernetwork / each input
// alone / the merge / the inputs stacked at their weights) and save the merge as a .pt.
//
// Files are read and merges written on Qt's thread pool; images are generated on the page's own
// thread, where the model stays loaded between previews. The UI thread never waits for either.

#include "core/hypernetwork/HypernetworkTools.h"

#include <QHash>
#include <QImage>
#include <QSet>
#include <QString>
#include <QTemporaryDir>
#include <QWidget>

#include <memory>
#include <vector>

class QComboBox;
class QDialog;
class QDoubleSpinBox;
class QGridLayout;
class QLabel;
class QLineEdit;
class QPushButton;
class QSlider;
class QSpinBox;
class QThread;

namespace studio::ui {

class MergePage : public QWidget
{
    Q_OBJECT

public:
    explicit MergePage(QWidget* parent = nullptr);
    // Cancels a running preview and waits for the generation thread.
    ~MergePage() override;

    // The inputs and their weights. addInputs() gives every input the weight 1/N afterwards
    // (an average, as `hnstudio merge` without weights).
    void setInputs(const std::vector<MergeInput>& inputs);
    void addInputs(const QStringList& paths);
    void removeInput(int index);
    void setWeight(int index, double weight);
    void setEqualWeights();
    std::vector<MergeInput> inputs() const;

    // Why the inputs cannot be merged (mergeIncompatibility, or a file that cannot be read);
    // empty when they can. isChecking(): files are still being read.
    QString incompatibility() const { return m_incompatibility; }
    bool isChecking() const { return !m_pendingSummaries.isEmpty(); }
    bool canMerge() const;

    // The checkpoint the previews use; `tokenizer` empty: the settings' path, else searched.
    void setModel(const QString& checkpoint, const QString& tokenizer = QString());
    // describeCheckpoint() of the model, or why it is not one.
    QString modelDescription() const;

    // The preview grid. Tiles appear at once; their images as they are generated.
    void startPreview();
    void cancelPreview();
    bool isPreviewRunning() const { return m_previewRunning; }
    int tileCount() const { return int(m_tiles.size()); }
    int previewCount() const; // tiles with an image
    QImage previewImage(int index) const;
    QString previewCaption(int index) const;
    QString previewParameters(int index) const;
    // The enlarged view a click on a tile opens; not modal, deleted when closed.
    QDialog* showEnlarged(int index);

    // Writes the merge to `path` in the background; mergeSaved() follows.
    void saveMerge(const QString& path);
    bool isSaving() const { return m_saving; }
    // The last file written by saveMerge(); empty before the first.
    QString mergedSavePath() const { return m_savedPath; }

Q_SIGNALS:
    void previewFinished();
    void mergeSaved(const QString& path);

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    struct InputEntry
    {
        QString path;
        double weight = 1.0;
    };

    // A file's summary, or why it could not be read.
    struct SummaryResult
    {
        HypernetworkSummary summary;
        QString error;
    };

    struct Tile
    {
        QString caption;
        QImage image;
        QString parameters;
        QLabel* imageLabel = nullptr;
        QLabel* captionLabel = nullptr;
    };

    struct GenerationState;

    void setupUi();
    QWidget* createInputsGroup();
    QWidget* createModelGroup();
    QWidget* createPreviewGroup();
    QWidget* createSaveRow();
    QWidget* createPreviewArea();

    void rebuildInputRows();
    void addInputRow(int row);
    void showWeight(int index);
    void updateWeightSum();
    void readSummaries();
    void refreshStructure();
    void setStructureText(const QString& text, const QString& color);
    void updateActions();

    void browseInputs();
    void browseModel();
    void describeModel();
    void chooseSavePath();

    struct PreviewPlan;
    PreviewPlan planPreview(QString& problem);
    void clearTiles();
    void addTile(const QString& caption);
    // Runs on the generation thread: loads the model when it changed, writes the merge, then
    // generates the tiles one by one and posts each image back.
    void generatePreview(const PreviewPlan& plan, quint64 job);
    void showTileImage(quint64 job, int index, const QImage& image, const QString& parameters);
    void showTileError(quint64 job, int index, const QString& message);
    void finishPreview(quint64 job, const QString& message);
    void setStatus(const QString& text, bool error = false);

    QLabel* m_inputsHint = nullptr;
    QWidget* m_inputsList = nullptr;
    QGridLayout* m_inputsGrid = nullptr;
    QList<QWidget*> m_rowWidgets;
    QList<QSlider*> m_weightSliders;
    QList<QDoubleSpinBox*> m_weightSpins;
    QLabel* m_weightSumLabel = nullptr;
    QLabel* m_structureLabel = nullptr;
    QLineEdit* m_checkpointEdit = nullptr;
    QLineEdit* m_tokenizerEdit = nullptr;
    QLabel* m_modelLabel = nullptr;
    QLineEdit* m_promptEdit = nullptr;
    QLineEdit* m_negativeEdit = nullptr;
    QSpinBox* m_seedSpin = nullptr;
    QComboBox* m_samplerCombo = nullptr;
    QSpinBox* m_stepsSpin = nullptr;
    QDoubleSpinBox* m_cfgSpin = nullptr;
    QSpinBox* m_widthSpin = nullptr;
    QSpinBox* m_heightSpin = nullptr;
    QPushButton* m_previewButton = nullptr;
    QPushButton* m_cancelButton = nullptr;
    QLineEdit* m_nameEdit = nullptr;
    QPushButton* m_saveButton = nullptr;
    QLabel* m_statusLabel = nullptr;
    QWidget* m_grid = nullptr;
    QGridLayout* m_gridLayout = nullptr;

    std::vector<InputEntry> m_inputs;
    QHash<QString, SummaryResult> m_summaries; // by absolute path
    QSet<QString> m_pendingSummaries;
    QString m_incompatibility;
    QString m_describedCheckpoint;
    bool m_modelOk = false;

    std::vector<Tile> m_tiles;
    quint64 m_previewJob = 0;
    qint64 m_previewSeed = 0;
    bool m_previewRunning = false;
    bool m_saving = false;
    QString m_savedPath;

    QTemporaryDir m_tempDir; // the merge each preview stacks
    QThread* m_generationThread = nullptr;
    QObject* m_generationContext = nullptr; // lives in m_generationThread
    std::shared_ptr<GenerationState> m_generation;
};

} // namespace studio::ui
