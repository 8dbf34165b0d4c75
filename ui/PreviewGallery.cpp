#include "ui/PreviewGallery.h"

#include "ui/Background.h"

#include <QApplication>
#include <QDir>
#include <QHBoxLayout>
#include <QImage>
#include <QImageReader>
#include <QLabel>
#include <QListWidget>
#include <QPixmap>
#include <QPushButton>
#include <QScreen>
#include <QVBoxLayout>

#include <algorithm>

namespace studio::ui {

namespace {

constexpr int kStepRole = Qt::UserRole;
constexpr int kPathRole = Qt::UserRole + 1;

// Scaled while decoding where the format allows it, so a large preview costs little.
QImage readScaled(const QString& path, int side)
{
    QImageReader reader(path);
    reader.setAutoTransform(true);
    const QSize size = reader.size();
    if (size.isValid()) {
        reader.setScaledSize(size.scaled(side, side, Qt::KeepAspectRatio));
    }
    return reader.read();
}

// As large as the image, but no larger than most of the screen.
QPixmap fittedPixmap(const QString& path, const QWidget* parent, int columns)
{
    QPixmap pixmap(path);
    const QScreen* screen = parent->screen();
    if (pixmap.isNull() || screen == nullptr) {
        return pixmap;
    }
    const QSize room = screen->availableSize() * 0.8;
    const QSize box(room.width() / columns, room.height());
    if (pixmap.width() > box.width() || pixmap.height() > box.height()) {
        pixmap = pixmap.scaled(box, Qt::KeepAspectRatio, Qt::SmoothTransformation);
    }
    return pixmap;
}

} // namespace

PreviewGallery::PreviewGallery(QWidget* parent) : QWidget(parent)
{
    setObjectName(QStringLiteral("previewGallery"));
    m_list = new QListWidget(this);
    m_list->setObjectName(QStringLiteral("previewList"));
    m_list->setViewMode(QListView::IconMode);
    m_list->setIconSize(QSize(kThumbnailSize, kThumbnailSize));
    m_list->setResizeMode(QListView::Adjust);
    m_list->setMovement(QListView::Static);
    m_list->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_list->setUniformItemSizes(true);

    m_compareButton = new QPushButton(tr("Compare"), this);
    m_compareButton->setObjectName(QStringLiteral("compareButton"));
    m_compareButton->setEnabled(false);
    m_hint = new QLabel(tr("Click a preview to enlarge it, Ctrl+click two to compare."), this);
    m_hint->setWordWrap(true);

    auto* bar = new QHBoxLayout;
    bar->addWidget(m_hint, 1);
    bar->addWidget(m_compareButton);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_list, 1);
    layout->addLayout(bar);

    connect(m_list, &QListWidget::itemClicked, this, &PreviewGallery::onItemClicked);
    connect(m_list, &QListWidget::itemSelectionChanged, this, &PreviewGallery::updateCompare);
    connect(m_compareButton, &QPushButton::clicked, this, &PreviewGallery::compareSelected);
}

void PreviewGallery::addPreview(int64_t step, const QString& path)
{
    auto* item = new QListWidgetItem(tr("step %1").arg(step), m_list);
    item->setData(kStepRole, QVariant::fromValue<qint64>(step));
    item->setData(kPathRole, path);
    item->setToolTip(QDir::toNativeSeparators(path));
    item->setSizeHint(QSize(kThumbnailSize + 16, kThumbnailSize + 2 * fontMetrics().height()));
    loadThumbnail(item, path);
}

void PreviewGallery::loadThumbnail(QListWidgetItem* item, const QString& path)
{
    const int row = m_list->row(item);
    const quint64 generation = m_generation;
    runInBackground(
        this, [path] { return readScaled(path, kThumbnailSize); },
        [this, row, generation](const QImage& image) {
            QListWidgetItem* target = m_list->item(row);
            if (generation != m_generation || target == nullptr) {
                return;
            }
            if (image.isNull()) {
                target->setText(target->text() + tr(" (unreadable)"));
            } else {
                target->setIcon(QIcon(QPixmap::fromImage(image)));
            }
            ++m_loaded;
            Q_EMIT thumbnailLoaded(row);
        });
}

void PreviewGallery::clear()
{
    ++m_generation;
    m_loaded = 0;
    m_list->clear();
}

int PreviewGallery::count() const
{
    return m_list->count();
}

int64_t PreviewGallery::stepAt(int index) const
{
    return m_list->item(index)->data(kStepRole).toLongLong();
}

QString PreviewGallery::pathAt(int index) const
{
    return m_list->item(index)->data(kPathRole).toString();
}

void PreviewGallery::setSelection(const QList<int>& indexes)
{
    m_list->clearSelection();
    for (int index : indexes) {
        m_list->item(index)->setSelected(true);
    }
}

QList<int> PreviewGallery::selectedIndexes() const
{
    QList<int> indexes;
    for (const QListWidgetItem* item : m_list->selectedItems()) {
        indexes << m_list->row(item);
    }
    std::sort(indexes.begin(), indexes.end());
    return indexes;
}

void PreviewGallery::onItemClicked(QListWidgetItem* item)
{
    // A plain click looks at one preview; with Ctrl or Shift the user is selecting to compare.
    if (QApplication::keyboardModifiers() == Qt::NoModifier) {
        showEnlarged(m_list->row(item));
    }
}

void PreviewGallery::updateCompare()
{
    m_compareButton->setEnabled(m_list->selectedItems().size() == 2);
}

void PreviewGallery::compareSelected()
{
    const QList<int> indexes = selectedIndexes();
    if (indexes.size() == 2) {
        showComparison(indexes[0], indexes[1]);
    }
}

QWidget* PreviewGallery::imagePanel(int index, int columns, QWidget* parent) const
{
    auto* panel = new QWidget(parent);
    auto* image = new QLabel(panel);
    image->setObjectName(QStringLiteral("previewImage"));
    image->setAlignment(Qt::AlignCenter);
    image->setPixmap(fittedPixmap(pathAt(index), this, columns));
    auto* caption = new QLabel(tr("step %1").arg(stepAt(index)), panel);
    caption->setAlignment(Qt::AlignCenter);

    auto* layout = new QVBoxLayout(panel);
    layout->addWidget(image, 1);
    layout->addWidget(caption);
    return panel;
}

QDialog* PreviewGallery::showEnlarged(int index)
{
    auto* dialog = new QDialog(this);
    dialog->setObjectName(QStringLiteral("enlargedPreview"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setWindowTitle(tr("Preview at step %1").arg(stepAt(index)));
    auto* layout = new QHBoxLayout(dialog);
    layout->addWidget(imagePanel(index, 1, dialog));
    dialog->show();
    return dialog;
}

QDialog* PreviewGallery::showComparison(int first, int second)
{
    auto* dialog = new QDialog(this);
    dialog->setObjectName(QStringLiteral("comparedPreviews"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setWindowTitle(tr("Step %1 and step %2").arg(stepAt(first)).arg(stepAt(second)));
    auto* layout = new QHBoxLayout(dialog);
    layout->addWidget(imagePanel(first, 2, dialog));
    layout->addWidget(imagePanel(second, 2, dialog));
    dialog->show();
    return dialog;
}

} // namespace studio::ui
