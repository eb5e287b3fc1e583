"""Kit UI (omni.ui) for the vlatwin window. Imported only inside Isaac Sim / Kit."""
