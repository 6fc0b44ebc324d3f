"""Widgets of the dlc app."""
