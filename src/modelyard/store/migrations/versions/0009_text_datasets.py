"""datasets may hold text corpora (kind text: the data language models are tuned on)

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
# NOTE: the brief said 0005; main's chain already runs 0005 -> 0006_dataset_kinds -> 0006 -> 0007 -> 0008 (two heads
# would break every upgrade), so this revises the current head; the lead relinks the chain when merging
down_revision = "0008"
branch_labels = None
depends_on = None

OLD = ("kind IN ('tabular','image-classification','object-detection','multilabel-classification',"
       "'text-classification')")
NEW = ("kind IN ('tabular','image-classification','object-detection','multilabel-classification',"
       "'text-classification','text')")


def _replace(condition: str) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # as in 0006: SQLite copies the table to change a CHECK, and the rows that refer to it step aside meanwhile
        op.execute("CREATE TEMP TABLE _dataset_versions_aside AS SELECT * FROM dataset_versions")
        op.execute("DELETE FROM dataset_versions")
    with op.batch_alter_table("datasets", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_datasets_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_datasets_kind"), condition)
    if sqlite:
        op.execute("INSERT INTO dataset_versions SELECT * FROM _dataset_versions_aside")
        op.execute("DROP TABLE _dataset_versions_aside")


def upgrade() -> None:
    _replace(NEW)


def downgrade() -> None:
    _replace(OLD)
