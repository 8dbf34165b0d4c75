#pragma once

// The previews of a run as thumbnails labelled with their step, filled in as they arrive. A
// click enlarges one in a dialog; with two selected (Ctrl+click), Compare shows them side by
// side. Images are read and scaled off the UI thread.

#include <QDialog>
#include <QString>
#include <QWidget>

#include <cstdint>

class QLabel;
class QListWidget;
class QListWidgetItem;
class QPushButton;

namespace studio::ui {

class PreviewGallery : public QWidget
{
    Q_OBJECT

public:
    static constexpr int kThumbnailSize = 128;

    explicit PreviewGallery(QWidget* parent = nullptr);

    void addPreview(int64_t step, const QString& path);
    void clear();

    int count() const;
    int64_t stepAt(int index) const;
    QString pathAt(int index) const;
    // How many thumbnails have been read so far (they load in the background).
    int loadedCount() const { return m_loaded; }

    // Selection for the comparison, by index (as a Ctrl+click would).
    void setSelection(const QList<int>& indexes);
    QList<int> selectedIndexes() const;

    // The dialogs a click and Compare open; shown, not modal, deleted when closed.
    QDialog* showEnlarged(int index);
    QDialog* showComparison(int first, int second);

Q_SIGNALS:
    void thumbnailLoaded(int index);

private:
    void loadThumbnail(QListWidgetItem* item, const QString& path);
    void onItemClicked(QListWidgetItem* item);
    void compareSelected();
    void updateCompare();
    QWidget* imagePanel(int index, int columns, QWidget* parent) const;

    QListWidget* m_list = nullptr;
    QPushButton* m_compareButton = nullptr;
    QLabel* m_hint = nullptr;
    int m_loaded = 0;
    // Bumped by clear(), so a thumbnail read for an earlier run is dropped on arrival.
    quint64 m_generation = 0;
};

} // namespace studio::ui
