"""Screens of the dlc app."""
