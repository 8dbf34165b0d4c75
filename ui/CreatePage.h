#pragma once

// Create: a new hypernetwork from a form with every option of HypernetworkConfig. The form
// validates as you type (the field at fault is marked red with the reason), shows the parameter
// count and file size the structure gives, and writes OUTPUT/NAME.pt on a worker thread.

#include "core/hypernetwork/HypernetworkConfig.h"
#include "core/hypernetwork/HypernetworkTools.h"

#include <QPointer>
#include <QWidget>

#include <functional>

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QThread;
class QToolButton;

namespace studio::ui {

class CreatePage : public QWidget
{
    Q_OBJECT

public:
    explicit CreatePage(QWidget* parent = nullptr);
    // Waits for a file being written, so that no thread outlives the page.
    ~CreatePage() override;

    // Asked before an existing file is replaced; true replaces it. The default asks the user.
    using OverwriteConfirmation = std::function<bool(const QString& path)>;
    void setOverwriteConfirmation(OverwriteConfirmation confirm);

    // What the form describes, and why it cannot be created (empty when it can).
    HypernetworkConfig config() const { return m_state.config; }
    QString problem() const { return m_state.problem; }
    // OUTPUT/NAME.pt, or empty while the name is missing.
    QString outputPath() const;
    // -1 while the form is invalid.
    int64_t parameterCount() const { return m_state.parameters; }
    bool isCreating() const { return m_creating; }

Q_SIGNALS:
    void hypernetworkCreated(const QString& path);

private:
    // The result of reading the form: a configuration, or the first problem and its field.
    struct FormState
    {
        HypernetworkConfig config;
        QString problem;
        QWidget* field = nullptr; // the widget at fault; null for the form as a whole
        bool hint = false;        // not an error yet (an empty name), so not shown in red
        int64_t parameters = -1;
        int64_t fileBytes = -1;
    };

    void setupUi();
    QWidget* createStructureGroup();
    QWidget* createSizesRow();
    QWidget* createAdvancedSection();
    QWidget* createOutputRow();
    void connectFields();

    FormState readForm() const;
    HypernetworkConfig baseConfig() const;
    bool readStructure(FormState& state) const;
    bool readAdvanced(FormState& state) const;
    QString sanitizedName() const;

    void refresh();
    void showState();
    void markField(QWidget* field, const QString& reason);
    void setAdvancedVisible(bool visible);
    void browseOutputFolder();

    void create();
    bool prepareOutput(const QString& path);
    void startWorker(const HypernetworkConfig& config, const QString& path);
    void finishCreate(const HypernetworkSummary& summary, const QString& error);

    QLineEdit* m_nameEdit = nullptr;
    QList<QCheckBox*> m_sizeChecks;
    QWidget* m_sizesRow = nullptr;
    QLineEdit* m_layersEdit = nullptr;
    QComboBox* m_activationCombo = nullptr;
    QCheckBox* m_layerNormCheck = nullptr;
    QCheckBox* m_useDropoutCheck = nullptr;
    QLineEdit* m_dropoutEdit = nullptr;
    QCheckBox* m_activateOutputCheck = nullptr;
    QComboBox* m_weightInitCombo = nullptr;
    QToolButton* m_advancedToggle = nullptr;
    QWidget* m_advancedPanel = nullptr;
    QLineEdit* m_seedEdit = nullptr;
    QLineEdit* m_normalStdEdit = nullptr;
    QCheckBox* m_skipConnectionCheck = nullptr;
    QCheckBox* m_upsampleLinearCheck = nullptr;
    QLineEdit* m_infoEdit = nullptr;
    QLabel* m_parameterLabel = nullptr;
    QLabel* m_fileSizeLabel = nullptr;
    QLabel* m_problemLabel = nullptr;
    QLineEdit* m_outputFolderEdit = nullptr;
    QLabel* m_outputPathLabel = nullptr;
    QPushButton* m_createButton = nullptr;
    QLabel* m_statusLabel = nullptr;

    FormState m_state;
    QList<QWidget*> m_markedFields;
    OverwriteConfirmation m_confirmOverwrite;
    QPointer<QThread> m_worker;
    bool m_creating = false;
};

} // namespace studio::ui
